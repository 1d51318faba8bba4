"""Which ERA5 leads of a run can be scored now: the progressive rule of ``core.scoring.era5_leads``
applied to the configured ERA5 source and delay."""

from __future__ import annotations

from datetime import datetime, timedelta

from gaia_dagster.core.contract import ERA5_LEAD_HOURS
from gaia_dagster.core.scoring.era5_leads import leads_due
from gaia_dagster.db.repository import now_utc
from gaia_dagster.resources.sources import WeatherSources

LEADS_CACHED = "leads_cached"
"""``era5_truth`` metadata: how many of the run's leads (in lead order) its truth cache holds."""


def due_leads(sources: WeatherSources, t0: datetime, now: datetime | None = None) -> tuple[int, ...]:
    """The ERA5 leads of the run at ``t0`` that are scorable at ``now`` (ERA5 covers them and the
    delay has passed), in lead order."""
    now = now or now_utc()
    return leads_due(t0, sources.era5(now=lambda: now).available_until(), now, ERA5_LEAD_HOURS,
                     timedelta(hours=sources.era5_delay_hours))
