"""Deterministic job IDs: Gaia-compatible UUIDs from scheduled times only."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from gaia_dagster.core.job_ids import DeterministicJobID, normalize_scheduled_time

T0 = datetime(2026, 10, 20, 0, 0, tzinfo=timezone.utc)
MINER = "5CRvYwFgdDuMtjvpaD1JN2Ss392F7D6BZNwohKFkRPTB1Hyz"


def test_weather_id_matches_the_gaia_rule_computed_independently():
    seed = f"weather_job_forecast_20261020000000_{MINER}"
    expected = str(uuid.UUID(bytes=hashlib.sha256(seed.encode()).digest()[:16], version=4))
    assert DeterministicJobID.generate_weather_job_id(T0, MINER, "validator-a") == expected


def test_validator_hotkey_is_left_out_so_validators_share_the_job():
    a = DeterministicJobID.generate_weather_job_id(T0, MINER, "validator-a")
    b = DeterministicJobID.generate_weather_job_id(T0, MINER, "validator-b")
    assert a == b
    assert a != DeterministicJobID.generate_weather_job_id(T0 + timedelta(hours=6), MINER, "validator-a")
    assert a != DeterministicJobID.generate_weather_job_id(T0, MINER + "x", "validator-a")


def test_other_task_ids_follow_their_seeds():
    ts = "20261020000000"
    geo = str(uuid.UUID(bytes=hashlib.sha256(f"geomagnetic_job_{ts}_m_v".encode()).digest()[:16], version=4))
    assert DeterministicJobID.generate_geomagnetic_job_id(T0, "m", "v") == geo
    soil = str(uuid.UUID(bytes=hashlib.sha256(f"soil_moisture_job_{ts}_m_v_bbox".encode()).digest()[:16], version=4))
    assert DeterministicJobID.generate_soil_moisture_job_id(T0, "m", "v", "bbox") == soil
    assert DeterministicJobID.generate_task_id("weather", T0, "ctx") == \
        hashlib.sha256(f"weather_task_{ts}_ctx".encode()).hexdigest()[:16]


def test_key_round_trips_to_the_gfs_time():
    key = DeterministicJobID.weather_job_key(T0, MINER)
    assert DeterministicJobID.parse_weather_job_key(key) == ("forecast", T0, MINER)
    with pytest.raises(ValueError):
        DeterministicJobID.parse_weather_job_key("weather_job_forecast_2026_x")


def test_is_deterministic_job_id():
    good = DeterministicJobID.generate_weather_job_id(T0, MINER)
    assert DeterministicJobID.is_deterministic_job_id(good, T0, MINER)
    assert not DeterministicJobID.is_deterministic_job_id(str(uuid.uuid4()), T0, MINER)


@given(
    moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_id_is_the_same_in_every_time_zone_naive_and_with_microseconds(moment, offset_minutes):
    utc_moment = moment.replace(tzinfo=timezone.utc)
    zoned = utc_moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    truncated = utc_moment.replace(microsecond=0)
    ids = {
        DeterministicJobID.generate_weather_job_id(moment, MINER),            # naive means UTC
        DeterministicJobID.generate_weather_job_id(zoned, MINER),             # any zone converts
        DeterministicJobID.generate_weather_job_id(truncated, MINER),         # microseconds truncate
    }
    assert len(ids) == 1
    assert normalize_scheduled_time(zoned) == truncated


def test_microseconds_truncate_not_round():
    late = T0.replace(microsecond=999_999)
    assert normalize_scheduled_time(late) == T0
