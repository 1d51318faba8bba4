"""Which data sources the code location runs on: ``GAIA_SOURCES=embedded|production``.

Dagster's ``resources_by_deployment_name`` pattern: one resource set per deployment, picked by name
when the code location loads. The name is the one setting read at load (it decides the resource
class, which Dagster cannot defer); every field of the chosen resource is bound as ``EnvVar``
(``resources/settings.py``) and read when a run or tick initialises it. Building a resource opens
nothing: the production sources touch the network only when a source is read.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

from gaia_dagster.resources.setting_checks import SettingError
from gaia_dagster.resources.settings import bound_env
from gaia_dagster.resources.sources import EmbeddedSources, ProductionSources, WeatherSources

DEFAULT_DEPLOYMENT = "embedded"

# Fields every deployment's sources bind, by environment variable.
SHARED_SETTINGS: dict[str, str] = {
    "era5_delay_hours": "GAIA_ERA5_DELAY_H",
    "scoring_profile": "GAIA_SCORING_PROFILE",
    "era5_variables": "GAIA_ERA5_VARIABLES",
    "cache_max_gb": "GAIA_CACHE_MAX_GB",
}
PRODUCTION_SETTINGS: dict[str, str] = {
    "era5_provider": "GAIA_ERA5_PROVIDER",
    "gfs_base_url": "GAIA_GFS_URL",
    "era5_url": "GAIA_ERA5_URL",
    "climatology_url": "GAIA_CLIMATOLOGY_URL",
    "storage_options_json": "GAIA_STORAGE_OPTIONS",
}
CHOICES: dict[str, tuple[str, ...]] = {"GAIA_ERA5_PROVIDER": ("arco", "cds")}


def embedded_sources(environ: Mapping[str, str]) -> WeatherSources:
    """The synthetic atmosphere; ``GAIA_RESOLUTION`` is its grid (Dagster has no float ``EnvVar``,
    so it is read here, at load)."""
    return EmbeddedSources(resolution=float(environ.get("GAIA_RESOLUTION") or 1.5), **bound_env(**SHARED_SETTINGS))


def production_sources(environ: Mapping[str, str]) -> WeatherSources:
    """NOAA GFS, ERA5 (ARCO or CDS), WeatherBench2 climatology, on Gaia's 0.25-degree grid."""
    return ProductionSources(**bound_env(**SHARED_SETTINGS, **PRODUCTION_SETTINGS))


SOURCES_BY_DEPLOYMENT: dict[str, Callable[[Mapping[str, str]], WeatherSources]] = {
    "embedded": embedded_sources,
    "production": production_sources,
}


def deployment_name(environ: Mapping[str, str] = os.environ) -> str:
    """Rule: ``GAIA_SOURCES`` names the deployment (default ``embedded``); any other value stops the
    load with an error naming the setting and the allowed values."""
    name = (environ.get("GAIA_SOURCES") or DEFAULT_DEPLOYMENT).strip()
    if name not in SOURCES_BY_DEPLOYMENT:
        raise SettingError(f"gaia-dagster cannot load with these settings: GAIA_SOURCES={name!r} is not one of "
                           f"{', '.join(SOURCES_BY_DEPLOYMENT)}")
    for variable, allowed in CHOICES.items():
        value = environ.get(variable, "").strip()
        if value and value not in allowed:
            raise SettingError(f"gaia-dagster cannot load with these settings: {variable}={value!r} is not one of "
                               f"{', '.join(allowed)}")
    return name


def sources_for_deployment(environ: Mapping[str, str] = os.environ) -> WeatherSources:
    """The ``sources`` resource of the deployment ``GAIA_SOURCES`` names."""
    return SOURCES_BY_DEPLOYMENT[deployment_name(environ)](environ)
