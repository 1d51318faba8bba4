"""ERA5 from the Copernicus Climate Data Store through ``cdsapi`` (``GAIA_ERA5_PROVIDER=cds``).

What Gaia's validators use: the CDS serves ERA5T about five days after the valid time, so the first
ERA5 score comes as early as theirs. Each valid time is asked for on its own, with only the
variables and the 13 levels scoring needs (``core/cds_request.py``), as GRIB; the CDS queues the
request, runs it and serves the file, which is decoded with cfgrib. The source does not cache: the
pipeline keeps what it read in its data cache, one entry per (valid time, variable)
(``stages/scoring.py``), so each valid time is asked for once. Reach: the catalogue's temporal
extent of both datasets.

The key comes from ``CDSAPI_URL``/``CDSAPI_KEY`` or ``~/.cdsapirc`` (``CDSAPI_RC``), read by cdsapi
itself; it is never a resource field (so never shown in the UI) and never logged: the client's
messages go through callbacks that drop its debug output (which prints the key) and redact the key
from everything else.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Sequence

import xarray as xr

from gaia_dagster.core.cds_request import ERA5_SHORT_NAMES, PRESSURE_LEVELS_DATASET, SINGLE_LEVELS, cds_requests, redact
from gaia_dagster.core.gfs_index import contract_dataset, normalise_grid
from gaia_dagster.resources.era5 import as_utc, requested

log = logging.getLogger(__name__)


class CdsConfigError(RuntimeError):
    """No CDS URL or key: the provider cannot be used until the operator configures it."""


def cds_credentials() -> tuple[str, str]:
    """The CDS URL and key as cdsapi finds them (``CDSAPI_URL``/``CDSAPI_KEY``, else ``~/.cdsapirc``)."""
    from cdsapi.api import get_url_key_verify

    try:
        url, key, _ = get_url_key_verify(None, None, None)
    except Exception as exc:  # noqa: BLE001 - cdsapi raises a bare Exception naming the rc file
        raise CdsConfigError(f"GAIA_ERA5_PROVIDER=cds needs the CDS key: set CDSAPI_URL and CDSAPI_KEY or write "
                             f"~/.cdsapirc ({exc})") from None
    return url, key


def _callbacks(key: str) -> dict:
    """Rule (key never logged): the client's info/warning/error go to our log with the key
    redacted; its debug output (which prints its whole config, key included) is dropped."""
    def at(level: int):
        def emit(message, *args, **_kwargs) -> None:  # noqa: ANN001
            text = str(message) % args if args else str(message)
            log.log(level, "CDS: %s", redact(text, key))
        return emit

    return {"info_callback": at(logging.INFO), "warning_callback": at(logging.WARNING),
            "error_callback": at(logging.ERROR), "debug_callback": lambda *a, **k: None}


def decode_era5_grib(path: Path, variables: Sequence[str]) -> dict[str, xr.DataArray]:
    """Rule: ERA5 GRIB messages by shortName to contract names, on the contract grid (lat 90 -> -90,
    lon 0..360, the 13 levels)."""
    import cfgrib

    fields: dict[str, xr.DataArray] = {}
    for dataset in cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""}):
        with dataset:
            dataset = dataset.load()
        if "isobaricInhPa" in dataset.coords and "isobaricInhPa" not in dataset.dims:
            dataset = dataset.expand_dims("isobaricInhPa")
        dataset = normalise_grid(dataset)
        for name, array in dataset.data_vars.items():
            target = ERA5_SHORT_NAMES.get(array.attrs.get("GRIB_shortName", str(name)))
            if target in variables:
                fields[target] = array
    return fields


class CdsERA5Source:
    """ERA5 (with the ERA5T tail) from the CDS, readable up to the catalogue's temporal extent."""

    def __init__(self, cache_dir: Path | str = Path("era5-cache"), timeout: float = 60.0, sleep_max: float = 30.0):
        self.cache_dir = Path(cache_dir)   # downloads land in a scratch folder under it
        self.timeout = timeout
        self.sleep_max = sleep_max
        self._client = None

    def client(self):
        """The cdsapi client, made on first use (no network before a read)."""
        if self._client is None:
            import cdsapi

            url, key = cds_credentials()
            self._client = cdsapi.Client(url=url, key=key, quiet=True, progress=False, timeout=self.timeout,
                                         sleep_max=self.sleep_max, retry_max=5, **_callbacks(key))
        return self._client

    def available_until(self) -> datetime | None:
        """Latest valid time both ERA5 datasets reach: the end of each catalogue entry's temporal extent."""
        catalogue = self.client().client
        ends = [catalogue.get_collection(name).end_datetime for name in (SINGLE_LEVELS, PRESSURE_LEVELS_DATASET)]
        return None if any(end is None for end in ends) else as_utc(min(ends))

    def truth(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        """ERA5 at ``valid_time``: the reach checked (LookupError past ``available_until()``), then
        one CDS request per dataset for this valid time and these variables."""
        valid = as_utc(valid_time)
        variables = requested(variables)
        until = self.available_until()
        if until is None or valid > until:
            reach = until.isoformat() if until else "nothing"
            raise LookupError(f"ERA5 for {valid.isoformat()} is not on the CDS yet (available until {reach})")
        fields: dict[str, xr.DataArray] = {}
        with tempfile.TemporaryDirectory(dir=self._scratch()) as scratch:
            for n, (dataset, request) in enumerate(cds_requests(valid, variables)):
                target = Path(scratch) / f"{n}.grib"
                self.client().retrieve(dataset, request, str(target))
                fields.update(decode_era5_grib(target, variables))
        missing = [v for v in variables if v not in fields]
        if missing:
            raise LookupError(f"the CDS answer for {valid.isoformat()} lacks {missing}")
        return contract_dataset({v: fields[v] for v in variables},
                                {"source": "Copernicus CDS ERA5", "valid_time": valid.isoformat()})

    def _scratch(self) -> Path:
        """Downloads land beside the cache (same disk), in a folder of their own per read."""
        folder = self.cache_dir / "era5-cds" / ".downloads"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
