"""What a run worker would otherwise import and build on every run, done once in the zygote.

Measured in a forked worker without it: ~1.8 CPU-s of lazy imports per run (Dagster's run-worker
entry point pulls in its CLI; the validator's stages import zarr, httpx, numcodecs, fsspec, the
chart code matplotlib, the DB layer Alembic's migration scripts). Anything here is paid once per
zygote, then shared copy-on-write by every fork.
"""

from __future__ import annotations

import importlib
import pkgutil

# Imported by a run, lazily: Dagster's run-worker path and the libraries our stages reach for.
RUN_MODULES: tuple[str, ...] = (
    "dagster._cli.api", "dagster._grpc.impl", "dagster._core.executor.in_process",
    "alembic.command", "alembic.script", "alembic.runtime.migration",
    # httpx imports its transport layer (httpcore) only when the first client is built: ~70 ms a run.
    "httpx", "httpcore", "zarr", "numcodecs", "fsspec", "bittensor_wallet",
    "matplotlib.figure", "matplotlib.backends.backend_agg", "PIL.PngImagePlugin",
)
# The validator's own packages (the reference miner and the demo are not part of a run).
VALIDATOR_PACKAGES: tuple[str, ...] = ("core", "db", "resources", "stages", "assets", "checks", "sensors", "world",
                                       "runtime")


def validator_modules() -> list[str]:
    """Every module of the validator's own packages."""
    names = []
    for package in VALIDATOR_PACKAGES:
        module = importlib.import_module(f"gaia_dagster.{package}")
        names.append(module.__name__)
        if hasattr(module, "__path__"):
            names += [m.name for m in pkgutil.walk_packages(module.__path__, prefix=f"{module.__name__}.")
                      if ".migrations." not in m.name]
    return names


def _render_once() -> None:
    """Draw one small chart, so matplotlib's font cache is loaded before any fork."""
    from io import BytesIO

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1, 1), dpi=20)
    figure.add_subplot().set_title("warm")
    FigureCanvasAgg(figure).print_png(BytesIO())


def warm(definitions_module: str = "gaia_dagster.definitions", instance_ref_json: str | None = None):  # noqa: ANN201
    """Import and build, once, what every run needs; open the instance and its storage (run storage,
    the event log's index database, its schema checked once here), and return it (None without a
    ref) for every forked run to use: a run then checks only its own event log database."""
    for name in (definitions_module, *RUN_MODULES, *validator_modules()):
        importlib.import_module(name)
    defs = getattr(importlib.import_module(definitions_module), "defs", None)
    if defs is not None:
        defs.get_repository_def()
    from sqlalchemy.orm import configure_mappers
    from xarray.namedarray.parallelcompat import list_chunkmanagers

    from gaia_dagster.db.migrate import head_revision

    from gaia_dagster.resources.miner_client import tls_context

    head_revision()
    tls_context()
    "warm".encode("idna")  # the codec httpx uses for every host name, imported on first use
    configure_mappers()   # the validator DB's ORM mappings, built on first query (~20 ms CPU a run otherwise)
    list_chunkmanagers()  # xarray's entry-point scan on a run's first open_zarr (~8 ms a run otherwise)
    _render_once()
    if not instance_ref_json:
        return None
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import deserialize_value

    instance = DagsterInstance.from_ref(deserialize_value(instance_ref_json, InstanceRef))
    instance.get_runs(limit=1)
    instance.get_asset_keys(limit=1)   # the event log's index database: opened and checked once
    return instance
