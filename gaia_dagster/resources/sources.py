"""The data sources (GFS, ERA5, climatology) as resources, one per deployment, with an on-disk cache.

``GAIA_SOURCES`` picks the deployment when the code location loads (``resources/deployments.py``):
``embedded`` is ``EmbeddedSources`` (the deterministic synthetic atmosphere, no network) and
``production`` is ``ProductionSources`` (NOAA GFS, ERA5 from ARCO-ERA5 or the CDS, the WeatherBench2
climatology). Both are a ``WeatherSources``, the resource every asset asks for; the pipeline sees
only the protocols of ``core.sources``. Nothing here opens a connection until a source is read.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Hashable, Iterator, Mapping, Sequence, TypeVar

import xarray as xr
from dagster import ConfigurableResource

from gaia_dagster.core.contract import CONTRACT_RESOLUTION
from gaia_dagster.core.scoring.variables import DEFAULT_ERA5_VARIABLES, VariableEntry, parse_variables
from gaia_dagster.resources.cache import (
    EntryPlanes, cached_entries, cached_entry, check_zarr, held_entries, zarr_entry,
)
from gaia_dagster.resources.cache_bound import register_bound
from gaia_dagster.resources.settings import DecimalText, decimal_setting, gaia_home

DEFAULT_CACHE_MAX_GB = "50"
K = TypeVar("K", bound=Hashable)
ERA5_PROVIDERS: tuple[str, ...] = ("arco", "cds")


class WeatherSources(ConfigurableResource):
    """What every deployment's sources share: the cache (bounded by ``cache_max_gb``), the grid
    forecasts are checked against (``resolution``), the ERA5 delay, scoring profile and variables."""

    resolution: float = 1.5
    cache_dir: str = ""
    # GAIA_CACHE_MAX_GB: the data cache's cap in GB; least recently used entries are evicted past it.
    cache_max_gb: DecimalText = DEFAULT_CACHE_MAX_GB
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

    def cache_max_bytes(self) -> int:
        """The cache's cap in bytes (``cache_max_gb`` x 10^9)."""
        return int(decimal_setting(self.cache_max_gb, "cache_max_gb", "GAIA_CACHE_MAX_GB") * 1e9)

    def cache_root(self) -> Path:
        """The data cache's folder (``cache_dir``, else ``$GAIA_HOME/cache``), registered with its cap
        so that every entry written under it keeps the cache within the cap (``cache_bound``)."""
        root = Path(self.cache_dir) if self.cache_dir else gaia_home() / "cache"
        register_bound(root, self.cache_max_bytes())
        return root

    def gfs(self):
        """The GFS source (``core.sources.GFSSource``)."""
        raise NotImplementedError

    def era5(self, now: Callable[[], datetime] | None = None):
        """The ERA5 source (``core.sources.ERA5Source``)."""
        raise NotImplementedError

    def climatology(self):
        """The climatology source (``core.sources.ClimatologySource``)."""
        raise NotImplementedError


class EmbeddedSources(WeatherSources):
    """``GAIA_SOURCES=embedded``: the synthetic atmosphere on a ``resolution``-degree grid
    (``GAIA_RESOLUTION``), no network."""

    seed: int = 0

    def _atmosphere(self):
        from gaia_dagster.world.atmosphere import SyntheticAtmosphere

        return SyntheticAtmosphere(resolution=self.resolution, seed=self.seed)

    def gfs(self):
        from gaia_dagster.world.sources import WorldGFSSource

        return WorldGFSSource(self._atmosphere())

    def era5(self, now: Callable[[], datetime] | None = None):
        from gaia_dagster.world.sources import WorldERA5Source

        return WorldERA5Source(self._atmosphere(), now=now or (lambda: datetime.now(timezone.utc)))

    def climatology(self):
        from gaia_dagster.world.sources import WorldClimatologySource

        return WorldClimatologySource(self._atmosphere())


class ProductionSources(WeatherSources):
    """``GAIA_SOURCES=production``: NOAA GFS by HTTP Range (``gfs_base_url``), ERA5 by provider
    (``era5_provider``: ``arco`` reads ``era5_url``, ``cds`` the Copernicus CDS through cdsapi with
    the key from ``CDSAPI_URL``/``CDSAPI_KEY`` or ``~/.cdsapirc``), the WeatherBench2 climatology
    (``climatology_url``). Forecasts are checked on Gaia's 0.25-degree 721 x 1440 grid whatever
    ``GAIA_RESOLUTION`` says. ``gs://`` stores need the ``production`` extra (gcsfs)."""

    resolution: float = CONTRACT_RESOLUTION
    gfs_base_url: str = "https://noaa-gfs-bdp-pds.s3.amazonaws.com"
    era5_provider: str = "arco"
    era5_url: str = "gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3"
    climatology_url: str = "gs://weatherbench2/datasets/era5-hourly-climatology/1990-2019_6h_1440x721.zarr"
    storage_options_json: str = '{"token": "anon"}'

    def _storage_options(self) -> dict | None:
        """fsspec options of the Zarr stores (JSON); ``{}`` means none (a local path or plain URL)."""
        return json.loads(self.storage_options_json or "{}") or None

    def gfs(self):
        from gaia_dagster.resources.gfs import NoaaGFSSource

        return NoaaGFSSource(base_url=self.gfs_base_url, cache_dir=self.cache_root())

    def era5(self, now: Callable[[], datetime] | None = None):
        """ERA5 from the configured provider; an unknown one is a ValueError naming GAIA_ERA5_PROVIDER."""
        if self.era5_provider == "cds":
            from gaia_dagster.resources.era5_cds import CdsERA5Source

            return CdsERA5Source(cache_dir=self.cache_root())
        if self.era5_provider != "arco":
            raise ValueError(f"GAIA_ERA5_PROVIDER={self.era5_provider!r} is not one of {', '.join(ERA5_PROVIDERS)}")
        from gaia_dagster.resources.era5 import ArcoERA5Source

        return ArcoERA5Source(url=self.era5_url, storage_options=self._storage_options())

    def climatology(self):
        from gaia_dagster.resources.climatology import WeatherBench2Climatology

        return WeatherBench2Climatology(url=self.climatology_url, storage_options=self._storage_options())


def cache_folder(root: Path, kind: str, moment: datetime) -> Path:
    """Cache layout: ``{root}/{kind}/{YYYYmmddHH}``, the entries of one kind at one time."""
    return root / kind / moment.strftime("%Y%m%d%H")


def cache_path(root: Path, kind: str, moment: datetime, name: str) -> Path:
    """Cache layout: ``{root}/{kind}/{YYYYmmddHH}/{name}.zarr``."""
    return cache_folder(root, kind, moment) / f"{name}.zarr"


def variable_entries(directory: Path, variables: Sequence[str]) -> dict[str, Path]:
    """Cache layout of a per-variable dataset: ``{directory}/{variable}.zarr``."""
    return {v: directory / f"{v}.zarr" for v in variables}


def _variable_builds(produce: Callable[[list[str]], xr.Dataset]) -> Callable[[list[str]], dict]:
    """The build of each missing variable's entry: one ``produce`` call for all of them."""
    def builds(todo: list[str]) -> dict:
        fresh = produce(todo)
        return {v: zarr_entry(lambda v=v: fresh[[v]]) for v in todo}
    return builds


def ensure_variables(directory: Path, variables: Sequence[str], produce: Callable[[list[str]], xr.Dataset]) -> Path:
    """Produce and write the per-variable entries of ``variables`` under ``directory`` once, under
    the cache rule (``resources/cache.py``): complete entries (marker, sizes, digests, variables)
    are left alone without reading their data; only the missing or incomplete ones are produced, in
    one ``produce(missing)`` call made while their locks are held, so racing writers produce each
    variable once."""
    cached_entries(variable_entries(directory, variables), _variable_builds(produce), check_zarr)
    return directory


@contextmanager
def held_variables(directory: Path, variables: Sequence[str],
                   produce: Callable[[list[str]], xr.Dataset]) -> Iterator[dict[str, EntryPlanes]]:
    """The per-variable entries of ``variables`` under ``directory``, filled as ``ensure_variables``
    fills them, each held for the block (``resources.cache.held_entries``: checked on open, never
    evicted under the reader) and read a plane at a time from its chunk files (``EntryPlanes``)."""
    with held_entries(variable_entries(directory, variables), _variable_builds(produce), EntryPlanes) as parts:
        yield parts


def ensure_cached(path: Path, produce: Callable[[], xr.Dataset]) -> Path:
    """Produce and write the dataset at ``path`` once, under the cache rule (``resources/cache.py``);
    a complete entry (marker, sizes, variables) is left alone without reading its data, an incomplete
    one is rebuilt."""
    return cached_entry(path, zarr_entry(produce), check_zarr)


@contextmanager
def held_datasets(paths: Mapping[K, Path], produce: Mapping[K, Callable[[], xr.Dataset]]) -> Iterator[dict[K, EntryPlanes]]:
    """The dataset entries at ``paths``, each produced and written on first use (``produce[key]``)
    as ``ensure_cached`` writes it, held for the block (``resources.cache.held_entries``: checked on
    open, never evicted under the reader) and read a plane at a time from its chunk files."""
    with held_entries(paths, lambda todo: {key: zarr_entry(produce[key]) for key in todo}, EntryPlanes) as parts:
        yield parts
