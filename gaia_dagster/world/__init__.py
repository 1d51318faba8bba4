"""The embedded default: a deterministic synthetic atmosphere, the sources over it, miner profiles."""

from gaia_dagster.world.atmosphere import SyntheticAtmosphere
from gaia_dagster.world.forecasts import PROFILES, forecast_for_profile, forecast_step
from gaia_dagster.world.sources import WorldClimatologySource, WorldERA5Source, WorldGFSSource

__all__ = ["PROFILES", "SyntheticAtmosphere", "WorldClimatologySource", "WorldERA5Source", "WorldGFSSource",
           "forecast_for_profile", "forecast_step"]
