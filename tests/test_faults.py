"""Fault profiles of the reference miner, served over real HTTP, driven through the validator's real
stages (request_forecast -> poll_in_flight -> verify_forecast -> score_day1_stage) on a SQLite
validator DB with the signed client.

Each test runs a faulty miner next to a healthy one: the faulty miner's job must end ``failed`` with
an error naming its hotkey and the fault (or be retried and succeed, for a transient fault), the
healthy miner's job must end ``day1_scored``, and no job may be lost or duplicated.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import pytest

from gaia_dagster.core.contract import Grid
from gaia_dagster.core.retry import StageRetry
from gaia_dagster.db.repository import MinerRecord, ValidatorRepository
from gaia_dagster.miner.faults import FAULTS
from gaia_dagster.resources.miner import hotkey_for_uri
from gaia_dagster.resources.miner_client import MAX_ANSWER_BYTES, MinerClientError
from gaia_dagster.resources.sources import EmbeddedSources, WeatherSources
from gaia_dagster.stages.forecast import ForecastRejected, verify_forecast
from gaia_dagster.stages.poll import poll_in_flight
from gaia_dagster.stages.request import open_job, request_forecast
from gaia_dagster.stages.scoring import score_day1_stage, score_era5_stage

from miner_server import TEST_VALIDATOR, running_miner, signed_client  # noqa: E402

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
RESOLUTION = 15.0
HEALTHY_URI = "//fault-test-healthy"
QUERY = StageRetry("query", 2, (0.0,))
POLL = StageRetry("poll", 3, (0.0,))
READ_TIMEOUT = 1.0
TOTAL_TIMEOUT = 2.5
CLIENT_CAP = 4 * 1024 * 1024
HANG_S = 30.0  # how long a hanging fault miner holds a request (far beyond the client's timeouts)


def client():  # noqa: ANN201 - a MinerClient
    """The validator's signed client with short timeouts and a small answer cap."""
    return signed_client(read_timeout=READ_TIMEOUT, total_timeout=TOTAL_TIMEOUT, max_response_bytes=CLIENT_CAP)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> WeatherSources:
    """Truth and reference data, cached once for the module (the forecasts' mirrors live here too)."""
    return EmbeddedSources(resolution=RESOLUTION, cache_dir=str(tmp_path_factory.mktemp("fault-sources")))


@pytest.fixture
def repo(tmp_path) -> ValidatorRepository:
    repository = ValidatorRepository(f"sqlite:///{tmp_path / 'validator.db'}")
    repository.create_schema()
    return repository


class Miners:
    """A healthy and a faulty miner, both served over real HTTP on loopback."""

    def __init__(self, tmp_path: Path, fault: str | None, **fault_settings):
        self._stack = ExitStack()
        self.fault = fault
        faulty_uri = f"//fault-test-{fault or 'none'}"
        h_url, self.healthy_app = self._stack.enter_context(
            running_miner(tmp_path / "healthy", hotkey_uri=HEALTHY_URI, resolution=RESOLUTION))
        f_url, self.faulty_app = self._stack.enter_context(
            running_miner(tmp_path / "faulty", hotkey_uri=faulty_uri, resolution=RESOLUTION, fault=fault,
                          **({"fault_delay_s": HANG_S} | fault_settings)))
        self.healthy = MinerRecord(hotkey_for_uri(HEALTHY_URI), h_url, None, True, 0)
        self.faulty = MinerRecord(hotkey_for_uri(faulty_uri), f_url, None, True, 0)

    def close(self) -> None:
        self._stack.close()


@pytest.fixture
def miners(tmp_path):
    made = []

    def make(fault: str | None, **settings) -> Miners:
        pair = Miners(tmp_path, fault, **settings)
        made.append(pair)
        return pair

    yield make
    for pair in made:
        pair.close()


def wait_for_inference(validator_client, repo: ValidatorRepository, deadline_s: float = 60.0) -> None:  # noqa: ANN001
    """Test helper (not a stage): let every in-flight miner finish inference before the poll stage,
    so the poll budget is spent only on misbehaviour. A miner that does not answer is left alone."""
    for row in repo.in_flight_responses():
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                status = validator_client.poll_job(row.miner_base_url, row.miner_hotkey, row.job_id).status
            except MinerClientError:
                break
            if status not in ("received", "running_inference", "processing_output", "processing"):
                break
            time.sleep(0.1)


def drive(repo: ValidatorRepository, pair: Miners, sources: WeatherSources, root: Path) -> dict[str, list[str]]:
    """Run the validator's stages for both miners until each job settles; returns each miner's outcomes."""
    validator_client = client()
    events: dict[str, list[str]] = {pair.healthy.hotkey: [], pair.faulty.hotkey: []}
    for miner in (pair.healthy, pair.faulty):
        repo.upsert_miner(miner.hotkey, miner.base_url)
    for miner in (pair.faulty, pair.healthy):  # the faulty miner first: it must not hold the healthy one up
        for _ in range(QUERY.max_attempts + 1):
            outcome = request_forecast(repo, validator_client, miner, T0, TEST_VALIDATOR, QUERY)
            events[miner.hotkey].append(f"query:{outcome.outcome}")
            if outcome.outcome not in ("retry_scheduled", "retry_not_due"):
                break
    wait_for_inference(validator_client, repo)
    for _ in range(POLL.max_attempts + 2):
        decisions = poll_in_flight(repo, validator_client, POLL)
        if not decisions:
            break
        for decision in decisions:
            row = decision.response
            events[row.miner_hotkey].append(f"poll:{decision.action}")
            if decision.action != "ready":
                continue
            try:
                verify_forecast(repo, validator_client, row, root / "verify", Grid(RESOLUTION))
                events[row.miner_hotkey].append("verified")
                score_day1_stage(repo, validator_client, sources, repo.response_by_id(row.id))
                events[row.miner_hotkey].append("day1_scored")
            except ForecastRejected as exc:
                events[row.miner_hotkey].append(f"rejected:{exc}")
    return events


def row_of(repo: ValidatorRepository, miner: MinerRecord):  # noqa: ANN201 - a ResponseRecord
    run = repo.run_for_init_time(T0)
    row = repo.response_for(run.id, miner.hotkey)
    assert row is not None, f"the job of miner {miner.hotkey} was lost"
    return row


def assert_invariants(repo: ValidatorRepository, pair: Miners) -> None:
    """The healthy miner is scored, both rows exist exactly once, the healthy miner ran one job."""
    healthy = row_of(repo, pair.healthy)
    assert healthy.status == "day1_scored", healthy
    assert healthy.error is None
    assert repo.total_score(healthy.id, "day1") is not None
    assert len(repo.responses()) == 2
    assert repo.duplicate_jobs() == []
    assert repo.duplicate_scores() == []
    assert len(pair.healthy_app.state.miner.jobs) == 1
    assert len(pair.faulty_app.state.miner.jobs) <= 1  # a retried request never starts a second job


def assert_failed(repo: ValidatorRepository, pair: Miners, *phrases: str) -> str:
    row = row_of(repo, pair.faulty)
    assert row.status == "failed", row
    assert row.error and pair.faulty.hotkey in row.error, row.error
    for phrase in phrases:
        assert phrase in row.error, f"{phrase!r} not in {row.error!r}"
    return row.error


# -- API faults: the request stage retries, then fails the job ---------------------------------------
@pytest.mark.parametrize("fault, phrases", [
    ("timeout", ("initiate-fetch failed 2 times", "timeout")),
    ("http500", ("initiate-fetch failed 2 times", "HTTP 500")),
    ("malformed_json", ("malformed JSON",)),
    ("wrong_schema", ("wrong schema", "'status'")),
    ("oversized", (f"{MAX_ANSWER_BYTES}-byte cap",)),  # JSON answers have their own, smaller cap
    ("slow_drip", ("timeout", "total time cap")),
])
def test_api_fault_fails_the_job_after_the_query_retries(fault, phrases, repo, miners, sources, tmp_path):
    pair = miners(fault, fault_size_bytes=2 * CLIENT_CAP)
    started = time.monotonic()
    events = drive(repo, pair, sources, tmp_path)
    assert events[pair.faulty.hotkey] == ["query:retry_scheduled", "query:failed"], events
    assert_failed(repo, pair, *phrases)
    assert row_of(repo, pair.faulty).query_attempts == QUERY.max_attempts
    assert_invariants(repo, pair)
    assert not pair.faulty_app.state.miner.jobs  # the broken answers never reached the protocol rule
    if fault in ("timeout", "slow_drip"):  # the client gave up in time, it did not wait for the miner
        assert time.monotonic() - started < HANG_S


def test_transient_http500_is_retried_and_then_succeeds(repo, miners, sources, tmp_path):
    pair = miners("http500", fault_count=1)
    events = drive(repo, pair, sources, tmp_path)
    assert events[pair.faulty.hotkey][:2] == ["query:retry_scheduled", "query:requested"], events
    row = row_of(repo, pair.faulty)
    assert row.status == "day1_scored" and row.error is None and row.query_attempts == 2
    assert len(pair.faulty_app.state.miner.jobs) == 1
    assert_invariants(repo, pair)


# -- store faults: the forecast is verified and refused ----------------------------------------------
@pytest.mark.parametrize("fault, phrases, stage_reached", [
    ("wrong_grid", ("has shape", "expected (40, 13, 24)"), ["poll:ready"]),  # refused on its metadata
    ("hash_mismatch", ("does not match the claimed verification hash",), ["poll:ready"]),
    ("bad_signature", ("manifest.sig is not", "signature"), ["poll:ready"]),
    ("tampered_chunk", ("does not match the manifest", "tampered"), ["poll:ready", "verified"]),
])
def test_store_fault_fails_the_job(fault, phrases, stage_reached, repo, miners, sources, tmp_path):
    pair = miners(fault)
    events = drive(repo, pair, sources, tmp_path)
    faulty_events = events[pair.faulty.hotkey]
    if fault == "tampered_chunk" and faulty_events[2:3] != ["verified"]:
        stage_reached = ["poll:ready"]  # the run's copy fingerprint sampled a tampered plane at verification
    assert faulty_events[: 1 + len(stage_reached)] == ["query:requested", *stage_reached], events
    assert faulty_events[-1].startswith("rejected:"), events
    assert_failed(repo, pair, *phrases)
    assert_invariants(repo, pair)


def test_nan_inf_store_is_refused_by_the_era5_guard_as_gaia_refuses_it(repo, miners, sources, tmp_path):
    """Gaia's day-1 has no coverage guard (deployed: the NaN and Inf cells are skipped, the job is
    day-1 scored); its ERA5 guard refuses a forecast below 10 % finite values, naming NaN/Inf."""
    pair = miners("nan_inf")
    events = drive(repo, pair, sources, tmp_path)
    assert events[pair.faulty.hotkey] == ["query:requested", "poll:ready", "verified", "day1_scored"], events
    with pytest.raises(ForecastRejected, match="NaN/Inf"):
        score_era5_stage(repo, client(), sources, row_of(repo, pair.faulty))
    assert_failed(repo, pair, "NaN/Inf")
    assert_invariants(repo, pair)


def test_nan_inf_store_really_holds_inf_and_nan(miners, tmp_path):
    """The nan_inf store is what it claims: some Inf and NaN beyond the 10 % coverage limit."""
    import numpy as np
    import xarray as xr

    pair = miners("nan_inf")
    validator_client = client()
    answer = validator_client.initiate_fetch(pair.faulty.base_url, pair.faulty.hotkey, TEST_VALIDATOR, T0)
    while validator_client.poll_job(pair.faulty.base_url, pair.faulty.hotkey, answer.job_id).status != "completed":
        time.sleep(0.1)
    store = pair.faulty_app.state.miner.forecasts_dir / f"{answer.job_id}.zarr"
    values = xr.open_zarr(store, consolidated=True)["2t"].isel(time=1).values
    assert np.isinf(values).any() and np.isnan(values).any()
    assert np.isfinite(values).mean() < 0.1


# -- the miner disappears after accepting ------------------------------------------------------------
def test_gone_mid_job_fails_after_the_poll_attempts(repo, miners, sources, tmp_path):
    pair = miners("gone_mid_job")
    events = drive(repo, pair, sources, tmp_path)
    assert events[pair.faulty.hotkey] == ["query:requested", "poll:waiting", "poll:waiting", "poll:failed"], events
    error = assert_failed(repo, pair, f"no forecast after {POLL.max_attempts} polls", "timeout")
    assert row_of(repo, pair.faulty).poll_attempts == POLL.max_attempts
    assert "job" in error
    assert len(pair.faulty_app.state.miner.jobs) == 1  # it did accept (and even ran) the job
    assert_invariants(repo, pair)


def test_every_fault_has_a_test():
    covered = {"timeout", "http500", "malformed_json", "wrong_schema", "oversized", "slow_drip", "wrong_grid",
               "hash_mismatch", "bad_signature", "tampered_chunk", "nan_inf", "gone_mid_job",
               "swap_after_freeze", "copier"}  # the last two: tests/test_freeze.py
    covered |= {"poll_nested_json", "poll_drip", "poll_huge", "poll_http500", "poll_not_found",
                "poll_bad_utf8"}  # tests/test_hostile_polls.py
    covered |= {"compression_bomb", "shape_bomb", "huge_manifest", "pickle_codec", "object_dtype",
                "junk_files"}  # tests/test_hostile_stores.py
    covered |= {"copier_noise", "copier_recompress", "copier_rechunk", "copier_reorder"}  # tests/test_copies.py
    covered |= {"store_503_after_verify"}  # tests/test_validator_faults.py
    covered |= {"slow_store"}  # tests/test_slow_lane.py, tests/test_fair_slots.py
    assert covered == set(FAULTS)


def test_unknown_fault_is_refused(tmp_path):
    from gaia_dagster.miner.app import MinerSettings

    with pytest.raises(ValueError, match="unknown fault"):
        MinerSettings(hotkey_uri="//x", profile="good", data_dir=tmp_path, fault="gremlins")


def test_serve_parses_the_fault_option():
    from gaia_dagster.miner.serve import build_parser

    args = build_parser().parse_args(["--fault", "http500", "--fault-count", "2", "--fault-delay", "5"])
    assert (args.fault, args.fault_count, args.fault_delay) == ("http500", 2, 5.0)


# -- the validator process killed mid-stage ----------------------------------------------------------
def test_worker_killed_after_claiming_the_query_attempt_loses_and_duplicates_nothing(repo, miners, sources,
                                                                                     tmp_path):
    """A worker claimed the query attempt (``claim_attempt``) and died before recording the answer.

    Current invariants: the row stays ``created`` with its attempt marked in flight (attempt 1, no
    next-attempt time); a second worker neither asks the miner again nor creates a second row (it
    records a ``duplicate_skipped``); the poll stage does not touch it; other miners are unaffected.
    What brings it back is the stale-work reaper (being written separately): it re-schedules an
    in-flight attempt that has been silent too long. Re-asking the miner then is safe because the job
    ID is deterministic: the miner answers with the job it already has and never starts a second one.
    """
    pair = miners(None)
    validator_client = client()
    repo.upsert_miner(pair.faulty.hotkey, pair.faulty.base_url)
    row, created = open_job(repo, pair.faulty, T0, TEST_VALIDATOR)
    assert created
    assert repo.claim_attempt(row.id, "query", "created", 0, next_attempt_at=None)
    # The dying worker got as far as sending initiate-fetch; its process ends before it records the answer.
    sent = validator_client.initiate_fetch(pair.faulty.base_url, pair.faulty.hotkey, TEST_VALIDATOR, T0)
    assert sent.status == "fetch_accepted" and sent.job_id == row.job_id

    second = request_forecast(repo, validator_client, pair.faulty, T0, TEST_VALIDATOR, QUERY)
    assert second.outcome == "duplicate_skipped" and "in flight" in second.detail
    events = drive(repo, pair, sources, tmp_path)  # the whole pipeline runs past it (healthy miner scored)
    assert events[pair.faulty.hotkey] == ["query:duplicate_skipped"], events
    stuck = row_of(repo, pair.faulty)
    assert (stuck.status, stuck.query_attempts, stuck.next_attempt_at) == ("created", 1, None)
    assert repo.duplicate_counts().get(("forecast_request", "detected"), 0) >= 2
    assert len(pair.faulty_app.state.miner.jobs) == 1
    assert_invariants(repo, pair)

    # What a reaper's re-schedule leads to (a stand-in for it: the attempt made due again): the
    # retried request lands on the miner's existing job under the same deterministic ID.
    repo.update_response(stuck.id, "created", next_attempt_at=datetime.now(timezone.utc))
    retried = request_forecast(repo, validator_client, pair.faulty, T0, TEST_VALIDATOR, QUERY)
    assert retried.outcome in ("requested", "fast_path") and retried.response.job_id == row.job_id
    assert len(pair.faulty_app.state.miner.jobs) == 1
    assert repo.duplicate_jobs() == [] and len(repo.responses()) == 2
