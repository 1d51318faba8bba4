"""The gaia-dagster code location: assets, checks, schedules, sensors, resources. Nothing else."""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from gaia_dagster.assets.chain_weights import chain_weights
from gaia_dagster.assets.day_view import day_view
from gaia_dagster.assets.era5 import era5_score, era5_truth
from gaia_dagster.assets.forecast_request import forecast_request
from gaia_dagster.assets.gfs_seed import gfs_seed
from gaia_dagster.assets.miner_forecast import day1_score, miner_forecast
from gaia_dagster.assets.miner_scores import miner_scores
from gaia_dagster.assets.scorecards import regional_scorecards
from gaia_dagster.checks.copies import no_copied_forecasts
from gaia_dagster.checks.integrity import job_ids_deterministic, no_duplicate_jobs
from gaia_dagster.resources.chain import SubnetChain
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.registry import MinerRegistry
from gaia_dagster.resources.validator_db import ValidatorDB
from gaia_dagster.jobs import ALL_JOBS
from gaia_dagster.runtime.compute_logs import keep_compute_logs_in_files
from gaia_dagster.runtime.schema_heads import keep_dagster_schema_heads
from gaia_dagster.runtime.sqlite_engines import keep_sqlite_engines
from gaia_dagster.schedules import daily_forecast_schedule
from gaia_dagster.sensors.day_view import day_view_sensor
from gaia_dagster.sensors.era5 import era5_availability_sensor
from gaia_dagster.sensors.orchestrate import miner_orchestration_sensor
from gaia_dagster.sensors.poll import forecast_poll_sensor
from gaia_dagster.sensors.reaper import stale_work_reaper
from gaia_dagster.sensors.registry import miner_registry_sensor
from gaia_dagster.sensors.weights import weights_cadence_sensor


def default_resources() -> dict[str, object]:
    """Resources of the embedded default, tunable through ``GAIA_*`` environment variables.

    Each set variable is bound as ``EnvVar`` and read by Dagster when the resource is initialised
    (``resources/settings.py``); an unset one leaves the field's default. A numeric variable that
    could never work (NaN, infinite, out of range) stops the load (``resources/setting_checks.py``).
    README "Configuration" lists them.
    """
    from gaia_dagster.resources.deployments import sources_for_deployment
    from gaia_dagster.resources.setting_checks import check_numeric_settings
    from gaia_dagster.resources.settings import bound_env

    check_numeric_settings()
    return {
        "validator_db": ValidatorDB(**bound_env(url="GAIA_DB_URL")),
        "miner_registry": MinerRegistry(**bound_env(path="GAIA_REGISTRY", source="GAIA_REGISTRY_SOURCE")),
        "chain": SubnetChain(**bound_env(network="GAIA_CHAIN_NETWORK", netuid="GAIA_NETUID", weights_mode="GAIA_WEIGHTS",
                                         version_key="GAIA_WEIGHTS_VERSION_KEY",
                                         min_validator_stake="GAIA_MIN_VALIDATOR_STAKE",
                                         weights_interval_blocks="GAIA_WEIGHTS_INTERVAL_BLOCKS",
                                         # Gaia's own weight settings, under Gaia's names
                                         burn_rate="BURN_RATE", burn_hotkey="BURN_HOTKEY",
                                         burn_miner_emission="BURN_MINER_EMISSION",
                                         weight_contrast_gamma="WEIGHT_CONTRAST_GAMMA")),
        "miner_access": MinerAccess(**bound_env(
            retry_scale="GAIA_RETRY_SCALE", read_timeout_s="GAIA_MINER_TIMEOUT_S",
            answer_deadline_s="GAIA_ANSWER_DEADLINE_S",
            slow_store_grace_s="GAIA_SLOW_STORE_GRACE_S", slow_store_bytes_per_s="GAIA_SLOW_STORE_BPS",
            wallet_name="GAIA_WALLET_NAME", wallet_hotkey="GAIA_WALLET_HOTKEY", wallet_path="GAIA_WALLET_PATH",
            validator_hotkey_uri="GAIA_VALIDATOR_URI")),
        # GAIA_SOURCES=embedded|production picks the sources' resource (resources/deployments.py).
        "sources": sources_for_deployment(),
    }


def build_definitions(resources: dict[str, object] | None = None) -> Definitions:
    """The code location; ``resources`` replaces the defaults (a set without ``chain`` gets the
    embedded default's: no chain, weights in dry-run)."""
    resources = resources or default_resources()
    return Definitions(
        assets=[gfs_seed, forecast_request, miner_forecast, day1_score, era5_truth, era5_score, miner_scores,
                regional_scorecards, chain_weights, day_view],
        asset_checks=[no_duplicate_jobs, job_ids_deterministic, no_copied_forecasts],
        jobs=ALL_JOBS,
        schedules=[daily_forecast_schedule],
        sensors=[miner_registry_sensor, miner_orchestration_sensor, forecast_poll_sensor,
                 era5_availability_sensor, stale_work_reaper, weights_cadence_sensor, day_view_sensor],
        resources={"chain": SubnetChain(), **resources},
        # Every step of a run executes in the run's own process: no process per step or check.
        executor=in_process_executor,
    )


# The code server opens an instance for every sensor tick, and a run worker checks its run's event
# log: each reads Dagster's schema head from disk once per process, not every time, and builds one
# SQLAlchemy engine per SQLite database, not one per statement. A run's stdout and stderr are
# captured into its compute log files without two tails and two interpreters a run.
keep_dagster_schema_heads()
keep_sqlite_engines()
keep_compute_logs_in_files()
defs = build_definitions()
