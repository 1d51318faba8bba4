"""Progressive ERA5 scoring (GAIA_SPEC section 1): each lead is scored as soon as ERA5 can judge it.

Lead h of a run initialised at T0 becomes scorable once ERA5 covers the valid time T0 + h and the
wall clock has passed T0 + h + the scoring delay (5 days of ERA5T latency plus a 6 h buffer, by
default). The ERA5 score divides by every required lead, so a lead not scored yet counts 0 until
it arrives and the score only rises as leads arrive.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable, Mapping, Sequence

from gaia_dagster.core.contract import ERA5_LEAD_HOURS

ERA5_SCORING_DELAY = timedelta(days=5, hours=6)


def lead_is_due(t0: datetime, lead_hours: int, era5_until: datetime | None, now: datetime,
                delay: timedelta = ERA5_SCORING_DELAY) -> bool:
    """Rule: lead h is scorable when ERA5 reaches T0 + h and now >= T0 + h + delay."""
    valid = t0 + timedelta(hours=lead_hours)
    return era5_until is not None and era5_until >= valid and now >= valid + delay


def leads_due(t0: datetime, era5_until: datetime | None, now: datetime,
              leads: Sequence[int] = ERA5_LEAD_HOURS, delay: timedelta = ERA5_SCORING_DELAY) -> tuple[int, ...]:
    """The required leads that are scorable now, in lead order (see ``lead_is_due``)."""
    return tuple(lead for lead in sorted(leads) if lead_is_due(t0, lead, era5_until, now, delay))


def leads_to_score(due: Iterable[int], scored: Iterable[int]) -> tuple[int, ...]:
    """The leads an arrival run scores: due and not scored before (a lead is scored once)."""
    done = set(scored)
    return tuple(sorted(lead for lead in set(due) if lead not in done))


def progressive_score(lead_scores: Mapping[int, float], leads: Sequence[int] = ERA5_LEAD_HOURS) -> float:
    """ERA5 score so far = sum of the scored leads' scores / number of required leads (a lead not
    scored yet counts 0, so the score never falls as leads arrive)."""
    if not leads:
        return 0.0
    return sum(score for lead, score in lead_scores.items() if lead in set(leads)) / len(leads)


def is_complete(scored: Iterable[int], leads: Sequence[int] = ERA5_LEAD_HOURS) -> bool:
    """True once every required lead has a score (the job's ERA5 score is final)."""
    return set(leads) <= set(scored)


def first_score_at(t0: datetime, leads: Sequence[int] = ERA5_LEAD_HOURS,
                   delay: timedelta = ERA5_SCORING_DELAY) -> datetime:
    """When the first ERA5 score can exist: T0 + the shortest lead + delay (about 6.25 days)."""
    return t0 + timedelta(hours=min(leads)) + delay
