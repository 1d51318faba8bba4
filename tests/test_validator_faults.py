"""Faults of the validator's own side are never a miner's, and nothing is lost (issue 18).

Each fault is the real part faulted: a disk that is really full (a tmpfs at 100 %, or the kernel's
file-size limit), a cache the kernel refuses to read, the PostgreSQL server killing the validator's
connection mid-transaction (``pg_terminate_backend``), an identity every miner refuses, a data source
whose port refuses, a miner store that answers 503 once verified. Miners are reference miners on
loopback; the validator DB is the real PostgreSQL server. After each fault clears, the job is carried
on by the stage's own retry or the reaper and scored as if nothing had happened.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import event

from gaia_dagster.core.contract import ERA5_LEAD_HOURS, Grid
from gaia_dagster.core.retry import StageRetry
from gaia_dagster.core.signing import keypair_from_uri
from gaia_dagster.db.repository import MinerRecord, ValidatorRepository, now_utc
from gaia_dagster.resources.gfs import NoaaGFSSource
from gaia_dagster.resources.miner import hotkey_for_uri
from gaia_dagster.resources.miner_client import MinerClientError
from gaia_dagster.resources.sources import EmbeddedSources
from gaia_dagster.stages.attempts import ValidatorFault
from gaia_dagster.stages.forecast import verify_forecast
from gaia_dagster.stages.poll import poll_in_flight
from gaia_dagster.stages.reaper import reap_stale_work
from gaia_dagster.stages.request import request_forecast
from gaia_dagster.stages.scoring import leaderboard, score_day1_stage, score_era5_stage, seed_gfs
from gaia_dagster.sensors.era5 import run_requests_for
from gaia_dagster.sensors.poll import query_retries_due, query_run_request

from miner_server import TEST_VALIDATOR, running_miner, signed_client  # noqa: E402

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
RESOLUTION = 15.0
QUERY = StageRetry("query", 2, (0.0,))
POLL = StageRetry("poll", 1000, (0.0,))   # polls until inference is done (no poll budget is tested here)
DAY1 = StageRetry("day1", 2, (0.0,))
RETRIES = {"query": QUERY, "day1": DAY1, "era5": StageRetry("era5", 2, (0.0,))}
WORKER = Path(__file__).parent / "faulted_stage.py"


def client():  # noqa: ANN201 - a MinerClient
    return signed_client(read_timeout=2.0, total_timeout=10.0)


@pytest.fixture
def repo(pg_url):
    repository = ValidatorRepository(pg_url)
    repository.create_schema()
    yield repository
    repository.engine.dispose()


@pytest.fixture
def sources(tmp_path):
    return EmbeddedSources(resolution=RESOLUTION, cache_dir=str(tmp_path / "cache"))


@pytest.fixture
def fleet(tmp_path):
    """``fleet(n, prefix, per_miner)``: n reference miners on loopback (``per_miner[i]``: miner i's settings)."""
    stack = ExitStack()

    def start(n: int, prefix: str = "vf", per_miner: dict[int, dict] | None = None) -> list[MinerRecord]:
        miners = []
        for i in range(n):
            uri = f"//{prefix}-{i}"
            url, _app = stack.enter_context(running_miner(tmp_path / f"{prefix}-{i}", hotkey_uri=uri,
                                                          resolution=RESOLUTION, **(per_miner or {}).get(i, {})))
            miners.append(MinerRecord(hotkey_for_uri(uri), url, None, True, 0))
        return miners

    yield start
    stack.close()


def request_all(repo: ValidatorRepository, miners: list[MinerRecord], validator_client=None) -> list[str]:  # noqa: ANN001
    return [request_forecast(repo, validator_client or client(), m, T0, TEST_VALIDATOR, QUERY).outcome for m in miners]


def until_ready(repo: ValidatorRepository, expected: int) -> list:
    """Poll (the real stage) until ``expected`` jobs are reported ready; their rows."""
    import time

    ready = {}
    for _ in range(300):
        ready |= {d.response.id: d.response for d in poll_in_flight(repo, client(), POLL) if d.action == "ready"}
        if len(ready) >= expected:
            return list(ready.values())
        time.sleep(0.2)
    raise AssertionError(f"only {len(ready)} of {expected} forecasts became ready")


def never_failed(repo: ValidatorRepository, row_id: int) -> bool:
    return all(t.to_status != "failed" for t in repo.transitions("response", row_id))


def faulted(fault: str, stage: str, repo: ValidatorRepository, row_id: int, root: Path) -> dict:
    """Run ``stage`` of job ``row_id`` in a process whose disk at ``root`` is faulted (tests/faulted_stage.py)."""
    args = json.dumps({"fault": fault, "stage": stage, "db_url": repo.engine.url.render_as_string(hide_password=False),
                       "response_id": row_id, "root": str(root), "resolution": RESOLUTION})
    prefix: list[str] = []
    if fault == "full" and shutil.which("unshare") and subprocess.run(["unshare", "-m", "true"]).returncode == 0:
        prefix = ["unshare", "-m"]
    if fault == "unreadable" and os.geteuid() == 0:
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]
    done = subprocess.run([*prefix, sys.executable, str(WORKER), args], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- disk full, cache unreadable -----------------------------------------------------------------
def test_a_full_disk_fails_no_miner_and_the_forecast_is_scored_once_space_returns(repo, fleet, sources, tmp_path):
    [miner] = fleet(1)
    assert request_all(repo, [miner]) == ["requested"]
    [row] = until_ready(repo, 1)
    disk = tmp_path / "disk"
    disk.mkdir()

    verify = faulted("full", "verify", repo, row.id, disk)
    assert verify["raised"] == "ValidatorFault", verify
    assert "validator's side" in verify["message"] and miner.hotkey in verify["message"]
    assert ("No space left on device" if verify["how"] == "tmpfs" else "File too large") in verify["message"]
    assert repo.response_by_id(row.id).status == "inference_running"   # kept, not failed

    verify_forecast(repo, client(), repo.response_by_id(row.id), disk / "verify", Grid(RESOLUTION))  # space back
    day1 = faulted("full", "day1", repo, row.id, disk)
    assert day1["raised"] == "ValidatorFault", day1
    assert "failed on the validator's side" in day1["message"] and "next attempt at" in day1["message"]
    held = repo.response_by_id(row.id)
    assert held.status == "day1_scoring" and held.next_attempt_at is not None and held.day1_attempts == 1

    scored = score_day1_stage(repo, client(), sources, held, retry=DAY1)   # the retry, space back
    final = repo.response_by_id(row.id)
    assert scored.outcome == "scored" and final.status == "day1_scored" and final.error is None
    assert never_failed(repo, row.id)


def test_an_unreadable_cache_fails_no_miner_and_the_job_is_scored_once_it_reads_again(repo, fleet, sources, tmp_path):
    [miner] = fleet(1)
    request_all(repo, [miner])
    [row] = until_ready(repo, 1)
    disk = tmp_path / "disk"
    (disk / "cache").mkdir(parents=True)
    disk.chmod(0)
    try:
        verify = faulted("unreadable", "verify", repo, row.id, disk)
    finally:
        disk.chmod(0o755)
    assert verify["raised"] == "ValidatorFault", verify
    assert "Permission denied" in verify["message"] and "validator's side" in verify["message"]
    assert repo.response_by_id(row.id).status == "inference_running"

    verify_forecast(repo, client(), repo.response_by_id(row.id), disk / "verify", Grid(RESOLUTION))
    on_disk = EmbeddedSources(resolution=RESOLUTION, cache_dir=str(disk / "cache"))
    seed_gfs(on_disk, T0)                                   # the GFS entries day-1 reads, cached
    (disk / "cache" / "gfs").chmod(0)
    try:
        day1 = faulted("unreadable", "day1", repo, row.id, disk)
    finally:
        (disk / "cache" / "gfs").chmod(0o755)
    assert day1["raised"] == "ValidatorFault", day1
    assert "Permission denied" in day1["message"] and "failed on the validator's side" in day1["message"]
    assert repo.response_by_id(row.id).status == "day1_scoring"
    assert score_day1_stage(repo, client(), on_disk, repo.response_by_id(row.id), retry=DAY1).outcome == "scored"
    assert never_failed(repo, row.id)


# -- PostgreSQL kills the connection ---------------------------------------------------------------
@contextmanager
def backend_killed_at(repo: ValidatorRepository, admin_url: str, matches):  # noqa: ANN001
    """The PostgreSQL server terminates the validator's connection (``pg_terminate_backend``) just
    before the first statement ``matches(statement, parameters)`` accepts; that statement then fails."""
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    killed: list[int] = []

    def before(_conn, cursor, statement, parameters, _context, _many):  # noqa: ANN001
        if not killed and matches(statement, str(parameters)):
            pid = cursor.connection.get_backend_pid()
            with admin.connect() as conn:
                conn.execute(sqlalchemy.text("select pg_terminate_backend(:pid)"), {"pid": pid})
            killed.append(pid)

    event.listen(repo.engine, "before_cursor_execute", before)
    try:
        yield killed
    finally:
        event.remove(repo.engine, "before_cursor_execute", before)
        admin.dispose()


def finish_day(repo: ValidatorRepository, sources: EmbeddedSources, rows: list) -> None:  # noqa: ANN001
    """Verify, day-1 and ERA5 score every ready job, then build the leaderboard (the real stages)."""
    for row in rows:
        verify_forecast(repo, client(), repo.response_by_id(row.id), sources.cache_root(), Grid(RESOLUTION))
        score_day1_stage(repo, client(), sources, repo.response_by_id(row.id), retry=DAY1)
        score_era5_stage(repo, client(), sources, repo.response_by_id(row.id), due=ERA5_LEAD_HOURS)
    run = repo.run_by_id(rows[0].run_id)
    [board] = run_requests_for(repo, run, ERA5_LEAD_HOURS, len(ERA5_LEAD_HOURS), RETRIES["era5"], now_utc())
    assert board.job_name == "miner_scores_job"
    leaderboard(repo, run.id)


def test_a_connection_dropped_between_create_and_claim_leaves_an_orphan_the_reaper_carries_on(
        repo, pg_server_url, fleet, sources):
    [orphan, other] = fleet(2)
    claim = lambda sql, params: sql.startswith("UPDATE weather_miner_responses") and "query_attempts" in sql  # noqa: E731
    with backend_killed_at(repo, pg_server_url, claim) as killed:
        with pytest.raises(sqlalchemy.exc.OperationalError):
            request_forecast(repo, client(), orphan, T0, TEST_VALIDATOR, QUERY)
    assert killed
    row = repo.responses()[0]
    assert (row.status, row.query_attempts, row.next_attempt_at) == ("created", 0, None)   # created, never claimed
    assert request_all(repo, [other]) == ["requested"]

    [reaped] = reap_stale_work(repo, RETRIES, orphaned=lambda r: r.id == row.id)   # its request run ended
    assert reaped.action == "query_orphan" and orphan.hotkey in reaped.detail
    [due] = query_retries_due(repo.responses(statuses=["created"]), now_utc())
    assert "|query|1|orphan" in query_run_request(due).run_key     # attempt 1's key is the orchestration's
    assert request_all(repo, [orphan]) == ["requested"]
    finish_day(repo, sources, until_ready(repo, 2))
    assert repo.run_by_id(row.run_id).status == "completed"
    assert {r.status for r in repo.responses()} == {"era5_scored"}


def test_a_connection_killed_after_the_miner_accepted_fails_no_miner_and_the_reaper_carries_it_on(
        repo, pg_server_url, fleet, sources):
    [miner] = fleet(1)
    accepted = lambda sql, params: sql.startswith("UPDATE weather_miner_responses") and "fetch_initiated" in params  # noqa: E731
    with backend_killed_at(repo, pg_server_url, accepted) as killed:
        with pytest.raises(sqlalchemy.exc.OperationalError):
            request_forecast(repo, client(), miner, T0, TEST_VALIDATOR, QUERY)
    assert killed
    [row] = repo.responses()
    assert (row.status, row.query_attempts) == ("created", 1)
    [reaped] = reap_stale_work(repo, RETRIES, orphaned=lambda r: True)
    assert reaped.action == "query_retry"
    assert request_all(repo, [miner]) == ["requested"]
    finish_day(repo, sources, until_ready(repo, 1))
    assert repo.response_by_id(row.id).status == "era5_scored" and never_failed(repo, row.id)


# -- an identity every miner refuses -----------------------------------------------------------------
def test_an_identity_every_miner_refuses_fails_no_miner_and_they_are_asked_again_once_it_is_fixed(repo, fleet):
    wrong = signed_client(keypair=keypair_from_uri("//not-the-registered-validator"), read_timeout=2.0)
    miners = fleet(2, per_miner={i: {"allowed_validators": (TEST_VALIDATOR,)} for i in range(2)})
    for _ in range(QUERY.max_attempts + 1):         # every attempt, and one more, for each miner
        assert request_all(repo, miners, wrong) == ["retry_scheduled", "retry_scheduled"]
    for row in repo.responses():
        assert row.status == "created" and row.query_attempts == QUERY.max_attempts + 1
        assert "presumed to be the validator's own" in row.error and "403" in row.error, row.error
    assert request_all(repo, miners) == ["requested", "requested"]      # the right identity: carried on
    assert {r.status for r in repo.responses()} == {"inference_running"}


def test_a_refusal_is_the_miners_once_another_miner_of_the_day_got_through(repo, fleet):
    other = keypair_from_uri("//another-validator").ss58_address
    [refuser, good] = fleet(2, prefix="mixed", per_miner={0: {"allowed_validators": (other,)}})
    assert request_all(repo, [refuser, good]) == ["retry_scheduled", "requested"]
    assert request_all(repo, [refuser]) == ["failed"]
    failed = repo.responses(statuses=["failed"])[0]
    assert failed.miner_hotkey == refuser.hotkey and "403" in failed.error and "validator's own" not in failed.error


# -- a data source that is down ----------------------------------------------------------------------
class GfsDownSources(EmbeddedSources):
    """The embedded world, with GFS read from a NOAA-layout bucket URL (here a port that refuses)."""

    gfs_url: str = ""

    def gfs(self):  # noqa: ANN201
        return NoaaGFSSource(base_url=self.gfs_url, cache_dir=self.cache_root())


def test_a_data_source_that_refuses_fails_no_miner_and_day1_scores_once_it_is_back(repo, fleet, tmp_path):
    with socket.socket() as probe:      # a loopback port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    [miner] = fleet(1)
    request_all(repo, [miner])
    [row] = until_ready(repo, 1)
    down = GfsDownSources(resolution=RESOLUTION, cache_dir=str(tmp_path / "cache"), gfs_url=f"http://127.0.0.1:{port}")
    verify_forecast(repo, client(), repo.response_by_id(row.id), down.cache_root(), Grid(RESOLUTION))
    with pytest.raises(ValidatorFault, match="failed on the validator's side .*(ConnectError|refused)"):
        score_day1_stage(repo, client(), down, repo.response_by_id(row.id), retry=DAY1)
    assert repo.response_by_id(row.id).status == "day1_scoring"
    back = EmbeddedSources(resolution=RESOLUTION, cache_dir=str(tmp_path / "cache"))
    assert score_day1_stage(repo, client(), back, repo.response_by_id(row.id), retry=DAY1).outcome == "scored"
    assert never_failed(repo, row.id)


# -- one miner never holds the day -----------------------------------------------------------------------
def test_a_store_that_answers_503_once_verified_delays_only_its_own_score(repo, fleet, sources):
    [good, withheld] = fleet(2, prefix="hold", per_miner={1: {"fault": "store_503_after_verify"}})
    request_all(repo, [good, withheld])
    rows = until_ready(repo, 2)
    for row in rows:
        verify_forecast(repo, client(), repo.response_by_id(row.id), sources.cache_root(), Grid(RESOLUTION))
    by_miner = {r.miner_hotkey: r for r in rows}
    with pytest.raises(MinerClientError, match="503"):
        score_day1_stage(repo, client(), sources, repo.response_by_id(by_miner[withheld.hotkey].id), retry=DAY1)
    waiting = repo.response_by_id(by_miner[withheld.hotkey].id)
    assert waiting.status == "day1_scoring" and waiting.next_attempt_at is not None
    assert "the miner's store could not be read" in waiting.error and withheld.hotkey in waiting.error

    ok = repo.response_by_id(by_miner[good.hotkey].id)
    score_day1_stage(repo, client(), sources, ok, retry=DAY1)
    score_era5_stage(repo, client(), sources, repo.response_by_id(ok.id), due=ERA5_LEAD_HOURS)
    run = repo.run_by_id(ok.run_id)
    [board] = run_requests_for(repo, run, ERA5_LEAD_HOURS, len(ERA5_LEAD_HOURS), RETRIES["era5"], now_utc())
    assert board.job_name == "miner_scores_job"          # the leaderboard goes out without waiting
    entries = {e.hotkey: e for e in leaderboard(repo, run.id)}
    assert entries[good.hotkey].overall_score > 0 and entries[withheld.hotkey].overall_score == 0

    with pytest.raises(MinerClientError, match="could not be read for day1 scoring in 2 attempts"):
        score_day1_stage(repo, client(), sources, repo.response_by_id(waiting.id), retry=DAY1)
    assert repo.response_by_id(waiting.id).status == "failed"     # the miner's, after its attempts
    [final] = run_requests_for(repo, repo.run_by_id(run.id), ERA5_LEAD_HOURS, len(ERA5_LEAD_HOURS),
                               RETRIES["era5"], now_utc())
    assert final.run_key != board.run_key
    leaderboard(repo, run.id)
    assert repo.run_by_id(run.id).status == "completed"


def test_a_miner_that_says_completed_but_never_serves_its_store_fails_within_the_poll_budget(repo, fleet, sources):
    [good, mute] = fleet(2, prefix="mute", per_miner={1: {"fault": "store_503_after_verify", "fault_count": 0}})
    request_all(repo, [good, mute])
    rows = {r.miner_hotkey: r for r in until_ready(repo, 2)}
    verify_forecast(repo, client(), repo.response_by_id(rows[good.hotkey].id), sources.cache_root(), Grid(RESOLUTION))
    row = rows[mute.hotkey]
    budget = StageRetry("poll", repo.response_by_id(row.id).poll_attempts + 2, (0.0,))
    for then in ("ready", "failed"):          # verified again at the next poll, until the budget is spent
        with pytest.raises(MinerClientError, match="503"):
            verify_forecast(repo, client(), repo.response_by_id(row.id), sources.cache_root(), Grid(RESOLUTION))
        [decision] = poll_in_flight(repo, client(), budget)
        assert decision.action == then, decision
    failed = repo.response_by_id(row.id)
    assert failed.status == "failed" and mute.hotkey in failed.error
    assert "could not be read for verification" in failed.error and "503" in failed.error
    assert repo.response_by_id(rows[good.hotkey].id).status == "forecast_ready"


# -- what the operator sees ------------------------------------------------------------------------
def test_an_unusable_identity_fails_the_request_run_naming_the_validator_and_creates_no_job(tmp_path):
    from dagster import DagsterEventType, instance_for_test

    from gaia_dagster.assets.partitions import date_miner_key, miner_partitions
    from gaia_dagster.definitions import build_definitions
    from gaia_dagster.resources.miner import MinerAccess
    from gaia_dagster.resources.registry import MinerRegistry
    from gaia_dagster.resources.validator_db import ValidatorDB

    defs = build_definitions({
        "validator_db": ValidatorDB(url=f"sqlite:///{tmp_path / 'validator.db'}"),
        "miner_registry": MinerRegistry(path=str(tmp_path / "miners.json")),
        "miner_access": MinerAccess(wallet_name="no-such-wallet", wallet_path=str(tmp_path / "wallets")),
        "sources": EmbeddedSources(resolution=RESOLUTION, cache_dir=str(tmp_path / "cache")),
    })
    repo = defs.resources["validator_db"].repo
    repo.upsert_miner("hk-a", "http://127.0.0.1:9")
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(miner_partitions.name, ["hk-a"])
        result = defs.resolve_job_def("forecast_request_job").execute_in_process(
            instance=instance, partition_key=date_miner_key("2026-10-20", "hk-a"), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    user = failure.step_failure_data.user_failure_data
    assert user.description.startswith("validator-side fault, not the miner's (ValidatorIdentityError")
    assert "no-such-wallet" in user.description
    assert user.metadata["fault_of"].value == "validator"
    assert repo.responses() == []                      # nothing was asked, nobody was failed
