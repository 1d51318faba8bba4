"""Partitions: a daily ``date`` (one run per GFS T0) and a dynamic ``miner`` keyed by hotkey."""


import os
import warnings
from datetime import datetime, timezone
from typing import Mapping

from dagster import (
    DailyPartitionsDefinition, DynamicPartitionsDefinition, MultiPartitionKey, MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
)

FIRST_DATE_ENV = "GAIA_FIRST_DATE"
DEFAULT_FIRST_DATE = "2026-10-01"


def first_date(environ: Mapping[str, str] = os.environ) -> str:
    """The first day of the daily partitions, from ``GAIA_FIRST_DATE`` (YYYY-MM-DD), by default
    2026-10-01. Start it near deployment: every day before it would show as a missing partition
    ("0% filled") and multiply the date x miner space. Read once, when the code location loads
    (partitions are structural). A malformed value raises ``ValueError`` naming the variable."""
    raw = (environ.get(FIRST_DATE_ENV) or "").strip() or DEFAULT_FIRST_DATE
    try:
        return datetime.strptime(raw, "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise ValueError(f"{FIRST_DATE_ENV}={raw!r} is not a date in YYYY-MM-DD form "
                         f"(e.g. {DEFAULT_FIRST_DATE})") from None


# end_offset=1: today's partition exists from 00:00 UTC, so the 18:00 UTC tick can target it.
daily_partitions = DailyPartitionsDefinition(start_date=first_date(), timezone="UTC", end_offset=1)
miner_partitions = DynamicPartitionsDefinition(name="miners")
date_miner_partitions = MultiPartitionsDefinition({"date": daily_partitions, "miner": miner_partitions})
with warnings.catch_warnings():  # the mapping is marked beta; its behaviour is covered by our tests
    warnings.simplefilter("ignore")
    to_date = MultiToSingleDimensionPartitionMapping(partition_dimension_name="date")

# Every step that talks to a miner takes a slot of this pool (limit set in the instance config).
MINER_IO_POOL = "miner_io"


def gfs_init_time(date_key: str) -> datetime:
    """T0 of a day's run: that day at 00:00 UTC (GAIA_SPEC 1)."""
    return datetime.strptime(date_key, "%Y-%m-%d").replace(tzinfo=timezone.utc)


def date_miner_key(date_key: str, hotkey: str) -> MultiPartitionKey:
    return MultiPartitionKey({"date": date_key, "miner": hotkey})


def split_key(partition_key) -> tuple[str, str]:  # noqa: ANN001
    """(date, miner) of a date x miner partition key. A run launched with only the
    ``dagster/partition`` tag (``dagster job launch``) carries it as the plain string ``date|miner``."""
    keys = getattr(partition_key, "keys_by_dimension", None)
    if keys is not None:
        return keys["date"], keys["miner"]
    date_key, sep, hotkey = str(partition_key).partition("|")
    if not sep or not date_key or not hotkey:
        raise ValueError(f"not a date|miner partition key: {partition_key!r}")
    return date_key, hotkey
