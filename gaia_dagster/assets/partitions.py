"""Partitions: a daily ``date`` (one run per GFS T0) and a dynamic ``miner`` keyed by hotkey."""


import warnings
from datetime import datetime, timezone

from dagster import (
    DailyPartitionsDefinition, DynamicPartitionsDefinition, MultiPartitionKey, MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
)

# end_offset=1: today's partition exists from 00:00 UTC, so the 18:00 UTC tick can target it.
daily_partitions = DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC", end_offset=1)
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
    """(date, miner) of a date x miner partition key."""
    keys = partition_key.keys_by_dimension
    return keys["date"], keys["miner"]
