"""Pure rules for asking the Copernicus CDS for ERA5 (GAIA_SPEC section 5 and 7): no network here.

ERA5 is two CDS datasets: ``reanalysis-era5-single-levels`` (2t, 10u, 10v, msl) and
``reanalysis-era5-pressure-levels`` (t, u, v, q, z). One request per dataset asks for exactly one
valid time, only the variables scoring needs and only the 13 contract levels, as GRIB on the native
0.25-degree grid, so a lead costs what it scores and nothing more.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

from gaia_dagster.core.contract import LEVEL_VARIABLES, PRESSURE_LEVELS, SURFACE_VARIABLES

SINGLE_LEVELS = "reanalysis-era5-single-levels"
PRESSURE_LEVELS_DATASET = "reanalysis-era5-pressure-levels"

# Contract name -> the CDS request's variable name (the long names of ARCO-ERA5 and WeatherBench2).
CDS_VARIABLES: dict[str, str] = {
    "2t": "2m_temperature", "10u": "10m_u_component_of_wind", "10v": "10m_v_component_of_wind",
    "msl": "mean_sea_level_pressure", "t": "temperature", "u": "u_component_of_wind",
    "v": "v_component_of_wind", "q": "specific_humidity", "z": "geopotential",
}
# GRIB shortName of each decoded ERA5 message (ecCodes, tables of ECMWF) -> contract name.
ERA5_SHORT_NAMES: dict[str, str] = {"2t": "2t", "10u": "10u", "10v": "10v", "msl": "msl",
                                    "t": "t", "u": "u", "v": "v", "q": "q", "z": "z"}


def cds_requests(valid_time: datetime, variables: Sequence[str]) -> list[tuple[str, dict]]:
    """Rule: ``(dataset, request)`` pairs for ``variables`` at one valid time: single levels for the
    surface variables, pressure levels (the 13 contract levels) for the others; a dataset with
    nothing to ask is left out; ``product_type`` reanalysis (ERA5T included: the CDS serves the
    preliminary tail under the same name), GRIB, unarchived."""
    t = valid_time.astimezone(timezone.utc) if valid_time.tzinfo else valid_time
    unknown = [v for v in variables if v not in CDS_VARIABLES]
    if unknown:
        raise KeyError(f"not contract variables: {unknown}")
    when = {"year": [f"{t:%Y}"], "month": [f"{t:%m}"], "day": [f"{t:%d}"], "time": [f"{t:%H}:00"]}
    common = {"product_type": ["reanalysis"], "data_format": "grib", "download_format": "unarchived"}
    out = []
    surface = [CDS_VARIABLES[v] for v in variables if v in SURFACE_VARIABLES]
    if surface:
        out.append((SINGLE_LEVELS, {**common, "variable": surface, **when}))
    levels = [CDS_VARIABLES[v] for v in variables if v in LEVEL_VARIABLES]
    if levels:
        out.append((PRESSURE_LEVELS_DATASET, {**common, "variable": levels,
                                              "pressure_level": [str(p) for p in PRESSURE_LEVELS], **when}))
    return out


def redact(text: str, secret: str | None) -> str:
    """Rule (the CDS key is never logged): every occurrence of the key in ``text`` becomes ``***``."""
    return text.replace(secret, "***") if secret else text
