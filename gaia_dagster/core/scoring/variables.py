"""Which fields a score covers: the variable list is a setting, as in Gaia.

A list is comma-separated names as Gaia spells them (``final_scoring_variables_levels`` /
``day1_variables_levels_to_score`` entries, written as Gaia's ``var_key``): a surface variable by
its name (``2t``, ``10u``, ``10v``, ``msl``); a pressure-level variable on every contract level by
its bare name (``t``, Gaia's ``level: "all"``); one level by name and level (``t850``, ``z500``).
Each name is one entry of the score: an all-levels entry is one variable whose levels are combined,
a single-level entry is scored as a field of its own (as Gaia scores it). ``GAIA_ERA5_VARIABLES``
(the pipeline) and ``--variables`` (``gaia-dagster score``) are both read by ``parse_variables``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from gaia_dagster.core.contract import LEVEL_VARIABLES, PRESSURE_LEVELS, SURFACE_VARIABLES

# Gaia v2.9.96 defaults (weather_task.py): every variable on every level for ERA5, five fields at day 1.
DEFAULT_ERA5_VARIABLES = "2t,10u,10v,msl,t,u,v,q,z"
DEFAULT_DAY1_VARIABLES = "2t,msl,10u,10v,z500"
_NAME = re.compile(r"^([a-z]+)(\d+)$")


@dataclass(frozen=True)
class VariableEntry:
    """One entry of a variable list: ``variable`` on ``levels`` (``(None,)`` at the surface)."""

    variable: str
    levels: tuple[int | None, ...]
    all_levels: bool = False

    @property
    def name(self) -> str:
        """Gaia's key of the entry: ``2t``, ``t`` (every level) or ``t850``."""
        level = self.levels[0]
        return self.variable if self.all_levels or level is None else f"{self.variable}{level}"


def allowed_names() -> list[str]:
    """Every name a list may hold."""
    return [*SURFACE_VARIABLES, *LEVEL_VARIABLES, *(f"{v}{lev}" for v in LEVEL_VARIABLES for lev in PRESSURE_LEVELS)]


def _entry(name: str) -> VariableEntry | None:
    if name in SURFACE_VARIABLES:
        return VariableEntry(name, (None,))
    if name in LEVEL_VARIABLES:
        return VariableEntry(name, tuple(sorted(PRESSURE_LEVELS)), all_levels=True)
    match = _NAME.match(name)
    if match and match.group(1) in LEVEL_VARIABLES and int(match.group(2)) in PRESSURE_LEVELS:
        return VariableEntry(match.group(1), (int(match.group(2)),))
    return None


def parse_variables(text: str | None, default: str = DEFAULT_ERA5_VARIABLES,
                    single_fields_only: bool = False) -> tuple[VariableEntry, ...]:
    """The entries of a comma-separated list (empty or None: ``default``), in the list's order. A
    name that is not allowed, a name given twice, or a level already covered by an all-levels entry
    is a ValueError naming it and the allowed names; ``single_fields_only`` (day 1, which scores one
    field at a time) refuses all-levels names."""
    names = [n.strip() for n in (text or default).split(",") if n.strip()]
    entries: list[VariableEntry] = []
    allowed = ", ".join([*SURFACE_VARIABLES, *LEVEL_VARIABLES]) + f" or a level variable with one of the levels " \
        f"{', '.join(map(str, PRESSURE_LEVELS))} (e.g. t850)"
    for name in names:
        entry = _entry(name)
        if entry is None:
            raise ValueError(f"unknown variable {name!r} in the variable list (allowed: {allowed})")
        if single_fields_only and entry.all_levels:
            raise ValueError(f"variable {name!r} names every level; day 1 scores single fields: name a level, "
                             f"e.g. {name}500 (allowed: {allowed})")
        clash = [e.name for e in entries if e.variable == entry.variable and set(e.levels) & set(entry.levels)]
        if clash:
            raise ValueError(f"variable {name!r} is already in the variable list (as {clash[0]})")
        entries.append(entry)
    if not entries:
        raise ValueError(f"the variable list is empty (allowed: {allowed})")
    return tuple(entries)


def entry_names(entries: Iterable[VariableEntry]) -> dict[tuple[str, int | None], VariableEntry]:
    """(variable, level) of every field of ``entries`` -> its entry."""
    return {(e.variable, level): e for e in entries for level in e.levels}


def required_variables(entries: Sequence[VariableEntry]) -> tuple[str, ...]:
    """The forecast variables ``entries`` read, in the list's order (each once)."""
    return tuple(dict.fromkeys(e.variable for e in entries))
