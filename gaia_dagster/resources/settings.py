"""Where the validator keeps its state on the embedded default, and its own identity."""

from __future__ import annotations

import os
from pathlib import Path


def dagster_home() -> Path:
    """``$DAGSTER_HOME``, or the project-local ``.dagster_home`` when unset."""
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()


def gaia_home() -> Path:
    """The validator's own files (DB, registry, data cache) live beside the Dagster instance."""
    return Path(os.environ.get("GAIA_HOME") or dagster_home() / "gaia").resolve()


DEFAULT_VALIDATOR_URI = "//gaia-dagster-validator"
