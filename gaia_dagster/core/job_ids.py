"""Deterministic job IDs (requirement: deterministic-job-ids).

Every ID comes from a *scheduled* time (the GFS initialisation time T0 of a run, a prediction
target time), never from the clock, so every replica and every validator computes the same ID.
The UUID rule is the deployed Gaia one: sha256 of a readable seed string, first 16 bytes, with
the RFC 4122 version-4 and variant bits set.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime, timezone

WEATHER_KEY_RE = re.compile(r"^weather_job_(?P<job_type>[A-Za-z0-9]+)_(?P<ts>\d{14})_(?P<miner>.+)$")
TS_FORMAT = "%Y%m%d%H%M%S"


def normalize_scheduled_time(moment: datetime) -> datetime:
    """Normalise a scheduled time: naive means UTC, other zones convert to UTC, microseconds drop.

    Microseconds are truncated, not rounded. (The deployed system meant to round to the nearest
    second, but it drops microseconds first, so its rounding never fires; truncation is what it
    really computes, and we match it.)
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def _timestamp(moment: datetime) -> str:
    """The seed timestamp: the normalised time as YYYYmmddHHMMSS."""
    return normalize_scheduled_time(moment).strftime(TS_FORMAT)


def _uuid_from_seed(seed: str) -> str:
    """Gaia's UUID rule: sha256(seed)[:16], b[6] = (b[6] & 0x0F) | 0x40, b[8] = (b[8] & 0x3F) | 0x80."""
    digest = bytearray(hashlib.sha256(seed.encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


class DeterministicJobID:
    """The ID API shared by validators and miners."""

    @staticmethod
    def weather_job_key(gfs_init_time: datetime, miner_hotkey: str, job_type: str = "forecast") -> str:
        """Readable weather key ``weather_job_{job_type}_{YYYYmmddHHMMSS}_{miner_hotkey}``.

        The validator hotkey is deliberately left out so that every validator shares the job.
        """
        return f"weather_job_{job_type}_{_timestamp(gfs_init_time)}_{miner_hotkey}"

    @staticmethod
    def parse_weather_job_key(key: str) -> tuple[str, datetime, str]:
        """Recover (job_type, gfs_init_time, miner_hotkey) from a readable weather key."""
        match = WEATHER_KEY_RE.match(key)
        if match is None:
            raise ValueError(f"not a weather job key: {key!r}")
        init = datetime.strptime(match["ts"], TS_FORMAT).replace(tzinfo=timezone.utc)
        return match["job_type"], init, match["miner"]

    @staticmethod
    def generate_weather_job_id(
        gfs_init_time: datetime, miner_hotkey: str, validator_hotkey: str | None = None,
        job_type: str = "forecast",
    ) -> str:
        """Weather job UUID from the GFS init time and the miner (validator kept for the API only)."""
        return _uuid_from_seed(DeterministicJobID.weather_job_key(gfs_init_time, miner_hotkey, job_type))

    @staticmethod
    def generate_geomagnetic_job_id(query_time: datetime, miner_hotkey: str, validator_hotkey: str) -> str:
        """Geomagnetic job UUID from ``geomagnetic_job_{ts}_{miner}_{validator}``."""
        return _uuid_from_seed(f"geomagnetic_job_{_timestamp(query_time)}_{miner_hotkey}_{validator_hotkey}")

    @staticmethod
    def generate_soil_moisture_job_id(
        target_time: datetime, miner_hotkey: str, validator_hotkey: str, region_bbox: str | None = None
    ) -> str:
        """Soil-moisture job UUID from ``soil_moisture_job_{ts}_{miner}_{validator}[_{bbox}]``."""
        seed = f"soil_moisture_job_{_timestamp(target_time)}_{miner_hotkey}_{validator_hotkey}"
        if region_bbox:
            seed += f"_{region_bbox}"
        return _uuid_from_seed(seed)

    @staticmethod
    def generate_task_id(task_name: str, target_time: datetime, additional_context: str | None = None) -> str:
        """Task ID: first 16 hex characters of sha256 of ``{task}_task_{ts}[_{context}]``."""
        seed = f"{task_name}_task_{_timestamp(target_time)}"
        if additional_context:
            seed += f"_{additional_context}"
        return hashlib.sha256(seed.encode("utf-8")).hexdigest()[:16]

    @staticmethod
    def is_deterministic_job_id(
        job_id: str, gfs_init_time: datetime, miner_hotkey: str, job_type: str = "forecast"
    ) -> bool:
        """True when ``job_id`` is exactly the weather ID for this T0 and miner."""
        return job_id == DeterministicJobID.generate_weather_job_id(gfs_init_time, miner_hotkey, None, job_type)


def weather_job_id(gfs_init_time: datetime, miner_hotkey: str) -> str:
    """The forecast job ID the pipeline uses for (T0, miner)."""
    return DeterministicJobID.generate_weather_job_id(gfs_init_time, miner_hotkey)
