"""The data sources (GFS, ERA5, climatology) as one configurable resource, with an on-disk cache.

``kind="world"`` is the embedded default: the deterministic synthetic atmosphere, no network.
Whatever the kind, the pipeline sees only the protocols of ``core.sources``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import xarray as xr
from dagster import ConfigurableResource

from gaia_dagster.core.scoring.variables import DEFAULT_ERA5_VARIABLES, VariableEntry, parse_variables
from gaia_dagster.resources.cache import cached_entry, check_zarr, load_zarr, read_entry, write_entry, zarr_entry
from gaia_dagster.resources.settings import gaia_home


class WeatherSources(ConfigurableResource):
    """Which data the validator scores against, and where it caches what it read.

    ``kind="world"``: the embedded synthetic atmosphere. ``kind="production"``: NOAA GFS (Range
    requests on the open-data bucket, or ``gfs_base_url``), ARCO-ERA5 and the WeatherBench2
    climatology (``gs://`` needs the ``production`` extra, gcsfs; ``storage_options`` as JSON).
    """

    kind: str = "world"
    resolution: float = 1.5
    seed: int = 0
    cache_dir: str = ""
    gfs_base_url: str = "https://noaa-gfs-bdp-pds.s3.amazonaws.com"
    era5_url: str = "gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3"
    climatology_url: str = "gs://weatherbench2/datasets/era5-hourly-climatology/1990-2019_6h_1440x721.zarr"
    storage_options_json: str = '{"token": "anon"}'
    # Progressive ERA5: lead h is scored once ERA5 covers T0+h and T0+h+delay has passed (5 d 6 h).
    era5_delay_hours: int = 126
    # Scoring profile (core/scoring/profiles.py): "deployed" (Gaia v2.9.96, the default) or "sound".
    scoring_profile: str = "deployed"
    # ERA5 variable list (core/scoring/variables.py), comma-separated as Gaia spells it; default Gaia's.
    era5_variables: str = DEFAULT_ERA5_VARIABLES

    def era5_entries(self) -> tuple[VariableEntry, ...]:
        """The ERA5 variable list's entries (``core.scoring.variables.parse_variables``); a bad name
        is a ValueError naming it, the allowed names and GAIA_ERA5_VARIABLES."""
        try:
            return parse_variables(self.era5_variables, DEFAULT_ERA5_VARIABLES)
        except ValueError as exc:
            raise ValueError(f"GAIA_ERA5_VARIABLES / era5_variables: {exc}") from exc

    def _atmosphere(self):
        from gaia_dagster.world.atmosphere import SyntheticAtmosphere

        return SyntheticAtmosphere(resolution=self.resolution, seed=self.seed)

    def _check_kind(self) -> str:
        if self.kind not in ("world", "production"):
            raise ValueError(f"unknown weather source kind {self.kind!r} (expected 'world' or 'production')")
        return self.kind

    def _storage_options(self) -> dict:
        import json

        return json.loads(self.storage_options_json or "{}")

    def gfs(self):
        if self._check_kind() == "production":
            from gaia_dagster.resources.gfs import NoaaGFSSource

            return NoaaGFSSource(base_url=self.gfs_base_url, cache_dir=self.cache_root())
        from gaia_dagster.world.sources import WorldGFSSource

        return WorldGFSSource(self._atmosphere())

    def era5(self, now: Callable[[], datetime] | None = None):
        if self._check_kind() == "production":
            from gaia_dagster.resources.era5 import ArcoERA5Source

            return ArcoERA5Source(url=self.era5_url, cache_dir=self.cache_root(), storage_options=self._storage_options())
        from gaia_dagster.world.sources import WorldERA5Source

        return WorldERA5Source(self._atmosphere(), now=now or (lambda: datetime.now(timezone.utc)))

    def climatology(self):
        if self._check_kind() == "production":
            from gaia_dagster.resources.climatology import WeatherBench2Climatology

            return WeatherBench2Climatology(url=self.climatology_url, cache_dir=self.cache_root(),
                                            storage_options=self._storage_options())
        from gaia_dagster.world.sources import WorldClimatologySource

        return WorldClimatologySource(self._atmosphere())

    def cache_root(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else gaia_home() / "cache"


def cache_path(root: Path, kind: str, moment: datetime, name: str) -> Path:
    """Cache layout: ``{root}/{kind}/{YYYYmmddHH}/{name}.zarr``."""
    return root / kind / moment.strftime("%Y%m%d%H") / f"{name}.zarr"


def write_cached(path: Path, dataset: xr.Dataset) -> Path:
    """Write (or replace) a dataset entry under the cache rule of ``resources/cache.py``: unique
    temporary, entry lock, atomic rename, completeness marker."""
    return write_entry(path, zarr_entry(lambda: dataset))


def read_cached(path: Path) -> xr.Dataset:
    """Read a cached dataset fully into memory, verified on read (``resources/cache.py``): marker,
    file sizes, every variable, every chunk; IncompleteEntry otherwise."""
    return read_entry(path, load_zarr)


def ensure_cached(path: Path, produce: Callable[[], xr.Dataset]) -> Path:
    """Produce and write the dataset at ``path`` once, under the cache rule (``resources/cache.py``);
    a complete entry (marker, sizes, variables) is left alone without reading its data, an incomplete
    one is rebuilt."""
    return cached_entry(path, zarr_entry(produce), check_zarr)


def cached(path: Path, produce: Callable[[], xr.Dataset]) -> xr.Dataset:
    """The cached dataset at ``path``, produced and written on first use, verified on every read and
    rebuilt when incomplete (the cache rule of ``resources/cache.py``)."""
    return cached_entry(path, zarr_entry(produce), load_zarr)
