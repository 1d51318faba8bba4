"""NOAA GFS from the open-data bucket (GAIA_SPEC section 7), behind ``core.sources.GFSSource``.

Only the GRIB2 messages the contract needs are fetched, with HTTP Range requests built from the
``.idx`` beside each file; the bytes are kept as a local ``.grib2`` (the cache) and decoded with
cfgrib. Needs ``cfgrib`` and ``eccodes`` (the PyPI eccodes wheels carry the C library).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import httpx
import xarray as xr

from gaia_dagster.core.contract import ALL_VARIABLES, PRESSURE_LEVELS
from gaia_dagster.core.gfs_index import (
    contract_dataset,
    geopotential,
    gfs_file_url,
    merge_ranges,
    normalise_grid,
    parse_idx,
    range_header,
    select_messages,
    wanted_messages,
)
from gaia_dagster.resources.cache import IncompleteEntry, cached_entry, complete_marker, read_entry

NOAA_GFS_BUCKET = "https://noaa-gfs-bdp-pds.s3.amazonaws.com"

# cfgrib/eccodes shortName of each decoded message -> contract name (GFS PRMSL decodes as prmsl).
SHORT_NAMES: dict[str, str] = {
    "2t": "2t", "10u": "10u", "10v": "10v", "prmsl": "msl", "msl": "msl",
    "t": "t", "u": "u", "v": "v", "q": "q", "gh": "z",
}
# Each contract variable is decoded through one cfgrib filter (one hypercube per filter).
FILTERS: dict[str, dict] = {
    "2t": {"typeOfLevel": "heightAboveGround", "level": 2},
    "10u": {"typeOfLevel": "heightAboveGround", "level": 10},
    "10v": {"typeOfLevel": "heightAboveGround", "level": 10},
    "msl": {"typeOfLevel": "meanSea"},
}
ISOBARIC_FILTER = {"typeOfLevel": "isobaricInhPa"}


class NotPublished(LookupError):
    """A GFS file NOAA has not published (yet, or at all): the validator's wait, never a miner's fault."""


def _utc(moment: datetime) -> datetime:
    """A timezone-aware UTC datetime (naive input is taken to be UTC already)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _variables(variables: Sequence[str] | None) -> list[str]:
    """Rule: no selection means every contract variable, in contract order."""
    return list(ALL_VARIABLES) if variables is None else list(variables)


def _selection_key(variables: list[str]) -> str:
    """Rule: the cache file name of a selection: ``all`` or a short hash of the sorted names."""
    if sorted(variables) == sorted(ALL_VARIABLES):
        return "all"
    return hashlib.sha1(",".join(sorted(variables)).encode()).hexdigest()[:10]


class NoaaGFSSource:
    """GFS analysis (f000 of the cycle at the valid time) and forecasts, read by byte range."""

    def __init__(self, base_url: str = NOAA_GFS_BUCKET, cache_dir: Path | str = Path("gfs-cache"),
                 timeout: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.cache_dir = Path(cache_dir)
        self.timeout = timeout

    # -- the protocol -------------------------------------------------------------------------

    def analysis(self, valid_time: datetime, variables: Sequence[str] | None = None) -> xr.Dataset:
        """GFS analysis at ``valid_time``: forecast hour 000 of the cycle starting then."""
        return self._read(_utc(valid_time), 0, _variables(variables), "analysis")

    def forecast(self, init_time: datetime, lead_hours: int,
                 variables: Sequence[str] | None = None) -> xr.Dataset:
        """GFS forecast from the cycle ``init_time`` at ``lead_hours`` (file ``fFFF``)."""
        return self._read(_utc(init_time), int(lead_hours), _variables(variables), "forecast")

    # -- fetching -----------------------------------------------------------------------------

    def file_url(self, init_time: datetime, forecast_hour: int) -> str:
        """URL of the GRIB2 file of a cycle and forecast hour on this mirror."""
        return gfs_file_url(self.base_url, _utc(init_time), forecast_hour)

    def grib_path(self, init_time: datetime, forecast_hour: int, variables: Sequence[str]) -> Path:
        """Cache layout: ``{cache}/gfs/{YYYYmmddHH}/f{FFF}-{selection}.grib2``."""
        t = _utc(init_time)
        return self.cache_dir / "gfs" / f"{t:%Y%m%d%H}" / f"f{forecast_hour:03d}-{_selection_key(list(variables))}.grib2"

    def read_grib(self, init_time: datetime, forecast_hour: int, variables: Sequence[str],
                  attrs: dict | None = None) -> xr.Dataset:
        """The needed messages decoded, from the cached ``.grib2`` (downloaded by merged byte ranges on
        first use). Cached under ``resources/cache.py``: decoded under the entry's shared lock after its
        sizes and SHA-256 digest are checked, so a truncated, unmarked or corrupt file is fetched again
        (and logged), and the cache's eviction never removes it mid-decode. A cached full selection
        serves any subset."""
        def decode(path: Path, _marker) -> xr.Dataset:  # noqa: ANN001
            return decode_grib(path, variables, attrs)

        complete = self.grib_path(init_time, forecast_hour, ALL_VARIABLES)
        if complete_marker(complete) is not None:
            try:
                return read_entry(complete, decode)
            except IncompleteEntry:
                pass  # refetched below
        path = self.grib_path(init_time, forecast_hour, variables)
        return cached_entry(path, lambda tmp: self._download(init_time, forecast_hour, variables, tmp), decode)

    def _download(self, init_time: datetime, forecast_hour: int, variables: Sequence[str], dest: Path) -> dict:
        """Write the needed messages of the file to ``dest``: its ``.idx``, then one request per merged range."""
        url = self.file_url(init_time, forecast_hour)
        with httpx.Client(timeout=self.timeout, follow_redirects=True) as client:
            idx = client.get(url + ".idx")
            if idx.status_code in (403, 404):  # S3 answers 403 for a missing key without list rights
                raise NotPublished(f"GFS {url} is not published yet or not available (HTTP {idx.status_code} "
                                   f"for {url}.idx); retried on the next attempt")
            idx.raise_for_status()
            chosen = select_messages(parse_idx(idx.text), wanted_messages(variables))
            ranges = merge_ranges(span for _, span in chosen)
            with open(dest, "wb") as out:
                for start, end in ranges:
                    out.write(_get_range(client, url, start, end))
        return {"url": url, "messages": len(chosen)}

    # -- decoding -----------------------------------------------------------------------------

    def _read(self, init_time: datetime, forecast_hour: int, variables: list[str], kind: str) -> xr.Dataset:
        """Fetch (or reuse) the GRIB file and decode it to the contract."""
        valid = init_time + timedelta(hours=forecast_hour)
        attrs = {"source": f"NOAA GFS {kind}", "init_time": init_time.isoformat(),
                 "lead_hours": forecast_hour, "valid_time": valid.isoformat()}
        if kind == "analysis":
            attrs = {"source": "NOAA GFS analysis", "valid_time": valid.isoformat()}
        return self.read_grib(init_time, forecast_hour, variables, attrs)


def _get_range(client: httpx.Client, url: str, start: int, end: int | None) -> bytes:
    """Rule: one HTTP Range request per merged range; a server ignoring Range (200) is sliced."""
    response = client.get(url, headers={"Range": range_header(start, end)})
    response.raise_for_status()
    if response.status_code == 206:
        return response.content
    body = response.content
    return body[start:] if end is None else body[start:end + 1]


def _open_filtered(path: Path, filter_by_keys: dict) -> xr.Dataset:
    """Open the messages of one cfgrib filter (no sidecar index file written beside the cache)."""
    return xr.open_dataset(path, engine="cfgrib", decode_timedelta=True,
                           backend_kwargs={"filter_by_keys": filter_by_keys, "indexpath": ""})


def _contract_fields(dataset: xr.Dataset) -> dict[str, xr.DataArray]:
    """Rule: map decoded messages by GRIB shortName to contract names; HGT becomes z = HGT x g."""
    fields: dict[str, xr.DataArray] = {}
    for name, array in dataset.data_vars.items():
        short = array.attrs.get("GRIB_shortName", str(name))
        target = SHORT_NAMES.get(short)
        if target is None:
            continue
        fields[target] = geopotential(array) if short == "gh" else array
    return fields


def decode_grib(path: Path, variables: Sequence[str], attrs: dict | None = None) -> xr.Dataset:
    """Decode a GFS GRIB2 file to the contract: names, dims, lat descending, lon 0..360, float32."""
    fields: dict[str, xr.DataArray] = {}
    surface_filters = []
    for name in variables:
        f = FILTERS.get(name)
        if f is not None and f not in surface_filters:
            surface_filters.append(f)
    if any(name not in FILTERS for name in variables):
        surface_filters.append(ISOBARIC_FILTER)
    for filter_by_keys in surface_filters:
        with _open_filtered(path, filter_by_keys) as ds:
            ds = ds.load()
        if "isobaricInhPa" in ds.coords and "isobaricInhPa" not in ds.dims:
            ds = ds.expand_dims("isobaricInhPa")
        if "isobaricInhPa" in ds.dims:
            _check_levels(ds)
        ds = normalise_grid(ds)
        for name, array in _contract_fields(ds).items():
            if name in variables and (name in FILTERS) == (filter_by_keys is not ISOBARIC_FILTER):
                fields[name] = array
    missing = [v for v in variables if v not in fields]
    if missing:
        raise LookupError(f"{path} decoded without {missing}")
    return contract_dataset({v: fields[v] for v in variables}, attrs)


def _check_levels(dataset: xr.Dataset) -> None:
    """Rule: an isobaric hypercube must hold all 13 contract levels."""
    have = {int(p) for p in dataset["isobaricInhPa"].values}
    missing = sorted(set(PRESSURE_LEVELS) - have)
    if missing:
        raise LookupError(f"GFS isobaric fields lack levels {missing} hPa")
