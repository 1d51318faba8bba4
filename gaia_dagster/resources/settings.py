"""Where the validator keeps its state, how ``GAIA_*`` settings reach its resources, and the instance.

Settings reach resources through Dagster's ``EnvVar``: the variable is resolved when Dagster
initialises the resource (in the run, or the sensor tick), never when the code location is
imported, and the UI shows which variable a field comes from. Dagster fails a run whose bound
``EnvVar`` is unset, so only variables that are set are bound; an unset one leaves the field's
default. Dagster has ``EnvVar`` (text) and ``EnvVar.int`` but no float variant, so a fractional
setting is a ``DecimalText`` field: a decimal number kept as text and parsed where it is used.
"""

from __future__ import annotations

import filecmp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator


def dagster_home() -> Path:
    """``$DAGSTER_HOME``, or the project-local ``.dagster_home`` when unset."""
    return Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()


def gaia_home() -> Path:
    """The validator's own files (DB, registry, data cache) live beside the Dagster instance."""
    return Path(os.environ.get("GAIA_HOME") or dagster_home() / "gaia").resolve()


DEFAULT_VALIDATOR_URI = "//gaia-dagster-validator"
"""The development key of the validator: public, fine for the demo and tests, never for a subnet."""


# --- settings from the environment ----------------------------------------------------------------

def bound_env(**fields: str) -> dict[str, Any]:
    """``{field: EnvVar(name)}`` for every ``field=name`` whose variable is set and not blank.

    Only the names are looked at here; Dagster reads the values when it initialises the resource.
    An unset (or blank) variable is left out, so the resource field keeps its default.
    """
    from dagster import EnvVar

    return {field: EnvVar(name) for field, name in fields.items() if os.environ.get(name, "").strip()}


def _number_as_text(value: Any) -> Any:
    """A number given in Python (``retry_scale=0.5``) becomes its text; text (and EnvVar) passes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a decimal number, not {value!r}")
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return value


DecimalText = Annotated[str, BeforeValidator(_number_as_text)]
"""A decimal number kept as text, so that ``EnvVar("GAIA_...")`` can supply it (see module doc)."""


def decimal_setting(value: str, field: str, env_name: str) -> float:
    """The float in a ``DecimalText`` field; a clear error naming the field and its variable."""
    from dagster import EnvVar

    if isinstance(value, EnvVar):
        raise ValueError(f"{field} is bound to {env_name} but the resource was not initialised by "
                         f"Dagster (use it in an asset or sensor, or call process_config_and_initialize())")
    try:
        return float(str(value).strip())
    except ValueError:
        raise ValueError(f"{field} must be a decimal number (from {env_name} when set), not {value!r}") from None


# --- the Dagster instance directory ---------------------------------------------------------------

PROJECT_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"
"""The embedded instance config shipped with the project (SQLite, forked runs, run monitoring)."""


@dataclass(frozen=True)
class InstanceInit:
    """What ``init_instance`` found and did: ``status`` is written / unchanged / kept."""

    home: Path
    config: Path
    template: Path
    status: str

    def describe(self) -> str:
        if self.status == "written":
            return f"wrote {self.config} (from {self.template})"
        if self.status == "unchanged":
            return f"{self.config} is already the project's instance config"
        return (f"kept {self.config}: it differs from the project's {self.template}; "
                f"compare them (diff {self.config} {self.template}) if you did not mean to change it")


def init_instance(home: Path | None = None, template: Path = PROJECT_DAGSTER_YAML) -> InstanceInit:
    """Make ``$DAGSTER_HOME`` (project-local ``.dagster_home`` when unset) ready for Dagster.

    The directory is created, and the project's ``dagster.yaml`` copied into it when it has none.
    An operator's own ``dagster.yaml`` is never overwritten: a copy that differs is kept, and the
    result says so.
    """
    home = (home or dagster_home()).resolve()
    if not template.is_file():
        raise FileNotFoundError(f"no instance config template at {template}: gaia-dagster instance init "
                                f"copies the project's dagster.yaml, run it from a source checkout")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        tmp = config.with_name(f".dagster.yaml.{os.getpid()}.tmp")
        shutil.copyfile(template, tmp)
        tmp.replace(config)
        return InstanceInit(home, config, template, "written")
    status = "unchanged" if filecmp.cmp(config, template, shallow=False) else "kept"
    return InstanceInit(home, config, template, status)
