"""The validator DB on SQLite and PostgreSQL: one run per T0, one job per (run, miner), audited CAS."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from gaia_dagster.core.job_ids import weather_job_id
from gaia_dagster.core.states import InvalidTransition
from gaia_dagster.db.repository import LostTransition, ValidatorRepository

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)



def test_run_is_created_once_per_t0(repo):
    first, created = repo.get_or_create_run(T0)
    again, created_again = repo.get_or_create_run(T0.replace(tzinfo=None))
    assert created and not created_again
    assert first.id == again.id and first.gfs_init_time == T0
    assert len(repo.all_runs()) == 1


def test_response_is_unique_per_run_and_miner_even_under_a_race(repo):
    run, _ = repo.get_or_create_run(T0)
    repo.upsert_miner("hk", "http://127.0.0.1:1")
    job = weather_job_id(T0, "hk")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: repo.create_response(run.id, "hk", "v", job, "http://127.0.0.1:1")[1],
                                range(16)))
    assert results.count(True) == 1
    assert len(repo.responses(run_id=run.id)) == 1
    assert repo.duplicate_jobs() == [] and repo.job_id_mismatches() == []


def test_invalid_transition_is_refused_unchanged_and_audited(repo):
    run, _ = repo.get_or_create_run(T0)
    row, _ = repo.create_response(run.id, "hk", "v", weather_job_id(T0, "hk"), "http://x")
    with pytest.raises(InvalidTransition, match="created -> day1_scored"):
        repo.transition_response(row.id, "created", "day1_scored")
    assert repo.response_by_id(row.id).status == "created"
    audit = repo.transitions("response", row.id)
    assert [(a.from_status, a.to_status, a.accepted) for a in audit] == [("created", "day1_scored", False)]


def test_lost_compare_and_set_changes_nothing(repo):
    run, _ = repo.get_or_create_run(T0)
    row, _ = repo.create_response(run.id, "hk", "v", weather_job_id(T0, "hk"), "http://x")
    repo.transition_response(row.id, "created", "fetch_initiated", dagster_run_id="r1")
    with pytest.raises(LostTransition, match="found 'fetch_initiated'"):
        repo.transition_response(row.id, "created", "failed", error="late")
    assert repo.response_by_id(row.id).status == "fetch_initiated"
    audit = repo.transitions("response", row.id)
    assert [(a.to_status, a.accepted, a.dagster_run_id) for a in audit] == [
        ("fetch_initiated", True, "r1"), ("failed", False, None)]


def test_claim_attempt_has_exactly_one_winner(repo):
    run, _ = repo.get_or_create_run(T0)
    row, _ = repo.create_response(run.id, "hk", "v", weather_job_id(T0, "hk"), "http://x")
    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda _: repo.claim_attempt(row.id, "query", "created", 0), range(16)))
    assert wins.count(True) == 1
    assert repo.response_by_id(row.id).query_attempts == 1


def test_scores_are_unique_per_component_and_rerun_replaces(repo):
    run, _ = repo.get_or_create_run(T0)
    row, _ = repo.create_response(run.id, "hk", "v", weather_job_id(T0, "hk"), "http://x")
    rows = [{"lead_hours": 24, "variable": "t", "level": 850, "rmse": 1.0, "skill": 0.5},
            {"lead_hours": 24, "variable": "2t", "level": None, "rmse": float("nan")},
            {"lead_hours": 0, "variable": "*", "level": 0, "score": 0.4}]
    repo.record_scores(row.id, "era5", rows)
    repo.record_scores(row.id, "era5", [{**rows[2], "score": 0.6}])
    stored = repo.scores(row.id, "era5")
    assert len(stored) == 3 and repo.duplicate_scores() == []
    assert repo.total_score(row.id, "era5") == pytest.approx(0.6)
    assert next(s for s in stored if s.variable == "2t").rmse is None


def test_score_rows_record_their_scoring_profile(repo):
    run, _ = repo.get_or_create_run(T0)
    row, _ = repo.create_response(run.id, "hk", "v", weather_job_id(T0, "hk"), "http://x")
    total = {"lead_hours": 0, "variable": "*", "level": 0, "score": 0.4}
    repo.record_scores(row.id, "era5", [{"lead_hours": 24, "variable": "t", "level": 850, "rmse": 1.0}, total],
                       profile="deployed")
    assert {s.profile for s in repo.scores(row.id, "era5")} == {"deployed"}
    repo.record_scores(row.id, "era5", [{**total, "score": 0.5}], profile="sound")
    assert repo.score_profile(row.id, "era5") == "sound" and repo.score_profile(row.id, "day1") is None


def test_job_id_mismatch_is_found(repo):
    run, _ = repo.get_or_create_run(T0)
    repo.create_response(run.id, "hk", "v", "not-deterministic", "http://x")
    assert [(m[1], m[2]) for m in repo.job_id_mismatches()] == [("hk", "not-deterministic")]


def test_migrations_create_the_schema_the_models_describe(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from gaia_dagster.db.migrate import current_revision, head_revision
    from gaia_dagster.db.models import Base

    repo = ValidatorRepository(db_url)
    assert repo.create_schema() == head_revision()
    assert repo.create_schema() == head_revision()  # idempotent
    assert current_revision(repo.engine) == head_revision()
    with repo.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    repo.engine.dispose()


def test_a_whole_era5_score_table_is_stored_in_one_call(repo):
    run, _ = repo.get_or_create_run(T0)
    row, _ = repo.create_response(run.id, "hk", "v", weather_job_id(T0, "hk"), "http://x")
    rows = [{"lead_hours": lead, "variable": f"v{i}", "level": 500, "rmse": 1.0, "skill": 0.5}
            for lead in range(24, 241, 24) for i in range(69)]
    assert repo.record_scores(row.id, "era5", rows) == 690
    assert len(repo.scores(row.id, "era5")) == 690 and repo.duplicate_scores() == []


def test_overall_scores_of_earlier_runs_feed_the_look_back(repo):
    from datetime import timedelta

    for day, score in ((0, 0.2), (1, 0.4), (2, 0.9)):
        t0 = T0 + timedelta(days=day)
        run, _ = repo.get_or_create_run(t0)
        row, _ = repo.create_response(run.id, "hk", "v", weather_job_id(t0, "hk"), "http://x")
        repo.record_scores(row.id, "overall", [{"lead_hours": 0, "variable": "*", "level": 0, "score": score}])
    history = repo.overall_scores_before(T0 + timedelta(days=2), 14)
    assert history == [{"hk": pytest.approx(0.2)}, {"hk": pytest.approx(0.4)}]


def test_weight_slots_are_recorded_once_each_and_kept(repo):
    """Every slot's weights stay (SQLite and PostgreSQL): a slot recorded again is updated in place,
    a failed one keeps its vector, and the cadence reads the last block of the given outcomes."""
    from gaia_dagster.core.states import WeightStatus
    from gaia_dagster.db.weights import last_weights_block, record_weights, weight_records

    call = {"intent": "SetWeights", "dests": [1, 4], "weights": [65535, 21845], "version_key": 2186}
    vector = [0.0] * 256
    vector[1], vector[4] = 0.75, 0.25
    record_weights(repo, "weights|after-700|slot-1", 950, "deployed", "submit", WeightStatus.FAILED.value, call,
                   vector, "SettingWeightsTooFast")
    record_weights(repo, "weights|after-700|slot-2", 1200, "deployed", "submit", WeightStatus.SUBMITTED.value, call,
                   vector)
    record_weights(repo, "weights|after-700|slot-2", 1201, "deployed", "submit", WeightStatus.SUBMITTED.value, call,
                   vector)
    records = weight_records(repo)
    assert [(r.slot_key, r.block, r.status) for r in records] == [
        ("weights|after-700|slot-2", 1201, "submitted"), ("weights|after-700|slot-1", 950, "failed")]
    assert records[1].vector == vector and records[1].call == call and "TooFast" in records[1].error
    assert last_weights_block(repo, (WeightStatus.SUBMITTED.value,)) == 1201
    assert last_weights_block(repo, (WeightStatus.RECORDED.value,)) is None
