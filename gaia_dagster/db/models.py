"""SQLAlchemy models of the validator DB, named as Gaia's tables (GAIA_SPEC section 8)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    true, Boolean, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint, Index,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gaia_dagster.core.states import ResponseStatus

CREATED = ResponseStatus.CREATED.value   # the first status of a run and of a job


class Base(DeclarativeBase):
    pass


UTCDateTime = DateTime(timezone=True)


class ForecastRun(Base):
    """One row per daily run, keyed by its GFS init time T0 (created once per T0)."""

    __tablename__ = "weather_forecast_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gfs_init_time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, unique=True)
    run_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(32), nullable=False, default=CREATED)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Miner(Base):
    """A miner known to this validator (from the registry), with liveness and its endpoint."""

    __tablename__ = "weather_miners"

    hotkey: Mapped[str] = mapped_column(String(64), primary_key=True)
    base_url: Mapped[str] = mapped_column(String(512), nullable=False)
    uid: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    listed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, server_default=true())
    consecutive_misses: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    first_missed_run_id: Mapped[int | None] = mapped_column(Integer)
    last_missed_run_id: Mapped[int | None] = mapped_column(Integer)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MinerResponse(Base):
    """One miner's response to one run: the job, its status, store and retry counters."""

    __tablename__ = "weather_miner_responses"
    __table_args__ = (
        UniqueConstraint("run_id", "miner_hotkey", name="uq_response_run_miner"),
        UniqueConstraint("job_id", name="uq_response_job_id"),
        Index("ix_response_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("weather_forecast_runs.id"), nullable=False)
    miner_hotkey: Mapped[str] = mapped_column(String(64), nullable=False)
    validator_hotkey: Mapped[str] = mapped_column(String(64), nullable=False)
    job_id: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False, default=CREATED)
    miner_base_url: Mapped[str] = mapped_column(String(512), nullable=False)
    zarr_store_url: Mapped[str | None] = mapped_column(String(1024))
    verification_hash_claimed: Mapped[str | None] = mapped_column(String(128))
    verification_hash_computed: Mapped[str | None] = mapped_column(String(128))
    query_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    poll_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    day1_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    era5_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    forecast_ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    slow_store_at: Mapped[datetime | None] = mapped_column(UTCDateTime)   # reads in the slow lane since


class MinerScore(Base):
    """One component or aggregate score, UNIQUE per (response, score type, lead, variable, level).

    Aggregates use ``variable = '*'``; surface variables use ``level = 0``; a whole-score row uses
    ``lead_hours = 0``.
    """

    __tablename__ = "weather_miner_scores"
    __table_args__ = (
        UniqueConstraint("response_id", "score_type", "lead_hours", "variable", "level",
                         name="uq_score_component"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("weather_miner_responses.id"), nullable=False)
    score_type: Mapped[str] = mapped_column(String(16), nullable=False)
    lead_hours: Mapped[int] = mapped_column(Integer, nullable=False)
    variable: Mapped[str] = mapped_column(String(16), nullable=False)
    level: Mapped[int] = mapped_column(Integer, nullable=False)
    score: Mapped[float | None] = mapped_column(Float)
    rmse: Mapped[float | None] = mapped_column(Float)
    bias: Mapped[float | None] = mapped_column(Float)
    acc: Mapped[float | None] = mapped_column(Float)
    skill: Mapped[float | None] = mapped_column(Float)
    clone_distance: Mapped[float | None] = mapped_column(Float)
    clone_penalty: Mapped[float | None] = mapped_column(Float)
    # The scoring profile the row was computed under (core/scoring/profiles.py); NULL before 0004.
    profile: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class StateTransition(Base):
    """Audit of every attempted state change: accepted or refused, when, by which Dagster run."""

    __tablename__ = "weather_state_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entity: Mapped[str] = mapped_column(String(16), nullable=False)
    entity_id: Mapped[int] = mapped_column(Integer, nullable=False)
    from_status: Mapped[str] = mapped_column(String(32), nullable=False)
    to_status: Mapped[str] = mapped_column(String(32), nullable=False)
    accepted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class DuplicateEvent(Base):
    """A duplicate attempt: detected (and stopped) or allowed (got through). Allowed must stay 0."""

    __tablename__ = "weather_duplicate_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stage: Mapped[str] = mapped_column(String(32), nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)  # detected | allowed
    key: Mapped[str] = mapped_column(String(256), nullable=False)
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class RunSelection(Base):
    """Which miners a run selected and which it skipped (and why), in the seeded order."""

    __tablename__ = "weather_run_selections"
    __table_args__ = (UniqueConstraint("run_id", "miner_hotkey", name="uq_selection_run_miner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("weather_forecast_runs.id"), nullable=False)
    miner_hotkey: Mapped[str] = mapped_column(String(64), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    selected: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class FrozenManifest(Base):
    """A response's manifest as verified inside the freeze window (issue 10): its hash, every file's
    digest (JSON ``{relpath: digest}``) and the digest of its data chunks, which finds copies."""

    __tablename__ = "weather_frozen_manifests"
    __table_args__ = (Index("ix_frozen_run_data_digest", "run_id", "data_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("weather_miner_responses.id"), nullable=False, unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("weather_forecast_runs.id"), nullable=False)
    miner_hotkey: Mapped[str] = mapped_column(String(64), nullable=False)
    manifest_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    files: Mapped[str] = mapped_column(Text, nullable=False)
    data_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    frozen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ForecastFingerprint(Base):
    """A verified forecast's content fingerprint (issue 18, ``core.copies``): its samples at the run's
    fields and points (float32, fields x points, little-endian), and the plan's seed."""

    __tablename__ = "weather_forecast_fingerprints"
    __table_args__ = (Index("ix_fingerprint_run", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("weather_miner_responses.id"), nullable=False, unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("weather_forecast_runs.id"), nullable=False)
    miner_hotkey: Mapped[str] = mapped_column(String(64), nullable=False)
    seed: Mapped[str] = mapped_column(String(64), nullable=False)
    n_fields: Mapped[int] = mapped_column(Integer, nullable=False)
    n_points: Mapped[int] = mapped_column(Integer, nullable=False)
    samples: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class WeightSubmission(Base):
    """The weights computed for one slot of the chain's cadence: the vector, the exact call (sent or,
    in dry-run, not), and what became of it (``core.states.WeightStatus``). Never deleted: a failed
    submission keeps its vector, and the next slot computes and tries again."""

    __tablename__ = "weather_weight_submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slot_key: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    block: Mapped[int] = mapped_column(Integer, nullable=False)
    profile: Mapped[str] = mapped_column(String(16), nullable=False)
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    call: Mapped[str] = mapped_column(Text, nullable=False)       # JSON: netuid, dests, weights (u16), version_key
    vector: Mapped[str | None] = mapped_column(Text)               # JSON: the 256 floats handed to the call
    error: Mapped[str | None] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class RegionalScore(Base):
    """One row of a miner's regional scorecard (``core.scoring.regions``): a field's RMSE, bias, ACC
    and skill over one WeatherBench2 region at one lead, UNIQUE per (response, score type, region,
    lead, variable, level). ``skill`` is against climatology; ``skill_gfs`` against the GFS forecast
    where the validator holds one (day-1), else NULL. These inform people; no score reads them."""

    __tablename__ = "weather_regional_scores"
    __table_args__ = (
        UniqueConstraint("response_id", "score_type", "region", "lead_hours", "variable", "level",
                         name="uq_regional_score"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    response_id: Mapped[int] = mapped_column(ForeignKey("weather_miner_responses.id"), nullable=False)
    score_type: Mapped[str] = mapped_column(String(16), nullable=False)
    region: Mapped[str] = mapped_column(String(32), nullable=False)
    lead_hours: Mapped[int] = mapped_column(Integer, nullable=False)
    variable: Mapped[str] = mapped_column(String(16), nullable=False)
    level: Mapped[int] = mapped_column(Integer, nullable=False)
    rmse: Mapped[float | None] = mapped_column(Float)
    bias: Mapped[float | None] = mapped_column(Float)
    acc: Mapped[float | None] = mapped_column(Float)
    skill: Mapped[float | None] = mapped_column(Float)
    reference_rmse: Mapped[float | None] = mapped_column(Float)
    skill_gfs: Mapped[float | None] = mapped_column(Float)
    gfs_rmse: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
