"""Hostile miners in the poll path (issue 10 item 3, issue 11 item 2), over real HTTP on loopback.

Reference miners with a poll fault (``gaia_dagster.miner.faults.POLL_FAULTS``) accept the job, then
answer its polls badly: nested JSON, a dripped answer, a huge answer, HTTP 500, ``not_found``,
bytes that are not UTF-8. Polled together with healthy miners, each hostile one fails alone with a
reason naming it, the healthy ones get their status, and the tick ends within the answer deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import ExitStack
from datetime import datetime, timezone

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

from gaia_dagster.core.answers import MAX_ANSWER_DEPTH, MAX_STORED_TEXT, AnswerRejected, parse_json_object, stored_text
from gaia_dagster.core.retry import StageRetry
from gaia_dagster.core.states import MINER_POLL_WORKING
from gaia_dagster.db.repository import MinerRecord
from gaia_dagster.fleet import free_port
from gaia_dagster.miner.faults import POLL_FAULTS
from gaia_dagster.resources.miner import hotkey_for_uri
from gaia_dagster.resources.miner_client import MAX_ANSWER_BYTES, MinerClient, MinerClientError, PollResult
from gaia_dagster.stages.poll import poll_in_flight
from gaia_dagster.stages.request import request_forecast

from miner_server import TEST_VALIDATOR, running_miner, signed_client  # noqa: E402

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
DEADLINE_S = 2.0
MARGIN_S = 2.5  # loopback handshakes, thread start-up, the DB writes of a tick
HEALTHY = ("//hostile-poll-healthy-a", "//hostile-poll-healthy-b")
REASONS = {  # what each hostile miner's poll must fail with
    "poll_nested_json": f"answer nested deeper than {MAX_ANSWER_DEPTH}",
    "poll_drip": "total time cap",
    "poll_huge": f"{MAX_ANSWER_BYTES}-byte cap",
    "poll_http500": "HTTP 500",
    "poll_bad_utf8": "not UTF-8",
}


def test_every_poll_fault_is_driven_here():
    assert set(REASONS) | {"poll_not_found"} == set(POLL_FAULTS)


# -- the answer rules, directly ----------------------------------------------------------------------
def test_a_200_kb_nested_answer_is_rejected_by_depth_not_by_recursion():
    body = b'{"status": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(AnswerRejected, match=f"nested deeper than {MAX_ANSWER_DEPTH}"):
        parse_json_object(body)
    inner = MAX_ANSWER_DEPTH - 1  # the answer object itself is the first level
    legal = b'{"status": "running", "note": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"{{", "x": ' + \
        b"[" * inner + b"]" * inner + b"}"
    assert parse_json_object(legal)["status"] == "running"  # brackets inside strings do not count
    with pytest.raises(AnswerRejected, match="nested deeper than 32"):
        parse_json_object(b'{"x": ' + b"[" * (inner + 1) + b"]" * (inner + 1) + b"}")


def test_answers_must_be_utf8_json_objects():
    with pytest.raises(AnswerRejected, match="not UTF-8"):
        parse_json_object(b'{"status": "\xff"}')
    with pytest.raises(AnswerRejected, match="not a JSON object"):
        parse_json_object(b'["completed"]')
    with pytest.raises(AnswerRejected, match="malformed JSON"):
        parse_json_object(b'{"status": ')


def test_stored_texts_are_bounded_and_storable():
    long = stored_text("\x00" + "y" * 50_000 + "\ud800")
    assert len(long) <= MAX_STORED_TEXT and "\x00" not in long and long.endswith("more characters cut]")
    assert stored_text("short \x00text") == "short text"
    assert stored_text(None) is None


# -- a fleet of hostile and healthy reference miners ---------------------------------------------------
@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """(client, {name: MinerRecord}, {name: job_id}): every miner accepted its job; inference is held."""
    root = tmp_path_factory.mktemp("hostile-polls")
    client = signed_client(answer_deadline=DEADLINE_S)
    with ExitStack() as stack:
        miners = {}
        for name in (*HEALTHY, *sorted(POLL_FAULTS)):
            uri = name if name.startswith("//") else f"//hostile-{name}"
            fault = None if name.startswith("//") else name
            url, _app = stack.enter_context(running_miner(
                root / uri.strip("/"), hotkey_uri=uri, resolution=30.0, inference_delay_s=3600.0, fault=fault,
                fault_delay_s=60.0, fault_size_bytes=4 * MAX_ANSWER_BYTES))
            miners[name] = MinerRecord(hotkey_for_uri(uri), url, None, True, 0)
        jobs = {name: client.initiate_fetch(m.base_url, m.hotkey, TEST_VALIDATOR, T0).job_id
                for name, m in miners.items()}
        yield client, miners, jobs


def assert_named_failure(result, miner: MinerRecord, reason: str) -> None:
    assert isinstance(result, MinerClientError), result
    assert miner.hotkey in str(result) and reason in str(result), str(result)


def test_hostile_poll_answers_fail_only_their_miner_within_the_deadline(fleet):
    client, miners, jobs = fleet
    names = list(miners)
    polls = [(miners[n].base_url, miners[n].hotkey, jobs[n]) for n in names]
    started = time.monotonic()
    results = client.poll_many(polls, concurrency=32)
    elapsed = time.monotonic() - started
    assert len(results) == len(polls)
    by_name = dict(zip(names, results))
    for name in HEALTHY:
        assert isinstance(by_name[name], PollResult) and by_name[name].status in MINER_POLL_WORKING, by_name[name]
    for name, reason in REASONS.items():
        assert_named_failure(by_name[name], miners[name], reason)
    assert by_name["poll_not_found"].status == "not_found"
    assert elapsed < DEADLINE_S + MARGIN_S, f"the tick took {elapsed:.1f} s"


def test_the_synchronous_poll_is_bounded_and_named_too(fleet):
    client, miners, jobs = fleet
    for name in ("poll_drip", "poll_nested_json"):
        started = time.monotonic()
        with pytest.raises(MinerClientError) as failed:
            client.poll_job(miners[name].base_url, miners[name].hotkey, jobs[name])
        assert miners[name].hotkey in str(failed.value) and REASONS[name] in str(failed.value)
        assert time.monotonic() - started < DEADLINE_S + MARGIN_S


def test_poll_in_flight_counts_each_hostile_answer_as_a_failed_attempt_with_its_reason(fleet, repo):
    client, miners, _jobs = fleet
    for miner in miners.values():
        repo.upsert_miner(miner.hotkey, miner.base_url)
        assert request_forecast(repo, client, miner, T0, TEST_VALIDATOR, StageRetry("query", 1, (0.0,))).outcome \
            == "requested"
    poll = StageRetry("poll", 2, (0.0,))
    hostile = {**REASONS, "poll_not_found": "the miner has no such job (status 'not_found')"}
    rows = {n: repo.response_for(repo.run_for_init_time(T0).id, m.hotkey) for n, m in miners.items()}

    started = time.monotonic()
    first = {d.response.miner_hotkey: d for d in poll_in_flight(repo, client, poll)}
    assert time.monotonic() - started < DEADLINE_S + MARGIN_S
    assert len(first) == len(miners)
    for name in HEALTHY:
        row = repo.response_by_id(rows[name].id)
        assert first[miners[name].hotkey].action == "waiting" and row.error is None and row.poll_attempts == 1
    for name, reason in hostile.items():
        row = repo.response_by_id(rows[name].id)
        assert first[miners[name].hotkey].action == "waiting"
        assert (row.status, row.poll_attempts) == ("inference_running", 1)
        assert row.error.startswith("poll attempt 1 failed") and reason in row.error and miners[name].hotkey in row.error

    poll_in_flight(repo, client, poll)  # the last poll: the hostile jobs fail with their last reason
    for name, reason in hostile.items():
        row = repo.response_by_id(rows[name].id)
        assert row.status == "failed" and "no forecast after 2 polls" in row.error and reason in row.error, row.error
    for name in HEALTHY:  # still inferring (held back): out of polls too, but on the status they answered
        row = repo.response_by_id(rows[name].id)
        assert row.status == "failed" and "last: " in row.error and "status 'received'" in row.error, row.error


# -- miners that are not reference miners --------------------------------------------------------------
def serve(app: FastAPI):  # noqa: ANN201 - (base_url, stop)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}", stop


def dripping_handshake_miner() -> FastAPI:
    """A miner that drips its Fiber public key, one byte a second, for a minute."""
    app = FastAPI()

    async def drip():  # noqa: ANN202
        for _ in range(60):
            yield b" "
            await asyncio.sleep(1.0)
        yield b"{}"

    @app.get("/public-encryption-key")
    async def public_key() -> StreamingResponse:
        return StreamingResponse(drip(), media_type="application/json")

    return app


def test_a_dripped_handshake_is_cut_at_the_deadline():
    url, stop = serve(dripping_handshake_miner())
    hotkey = hotkey_for_uri("//drips-its-public-key")
    try:
        client = signed_client(answer_deadline=DEADLINE_S)
        started = time.monotonic()
        [result] = client.poll_many([(url, hotkey, "job-1")])
        assert_named_failure(result, MinerRecord(hotkey, url, None, True, 0), "total time cap")
        with pytest.raises(MinerClientError, match="total time cap"):
            client.poll_job(url, hotkey, "job-1")
        assert time.monotonic() - started < 2 * DEADLINE_S + MARGIN_S
    finally:
        stop()


def test_a_huge_failure_message_with_nul_is_stored_bounded(repo):
    """A miner's ``failed`` message (NUL included, which PostgreSQL text refuses) is stored cut."""
    app = FastAPI()

    @app.post("/weather-initiate-fetch")
    async def initiate(body: dict) -> JSONResponse:
        from gaia_dagster.core.job_ids import weather_job_id

        job = weather_job_id(T0, body["data"]["expected_miner_hotkey"])
        return JSONResponse({"status": "fetch_accepted", "job_id": job, "message": ""})

    @app.post("/weather-poll-job-status")
    async def poll(body: dict) -> JSONResponse:
        return JSONResponse({"status": "failed", "job_id": body["data"]["job_id"],
                             "message": "\x00boom " + "z" * 500_000})

    url, stop = serve(app)
    miner = MinerRecord(hotkey_for_uri("//long-failure"), url, None, True, 0)
    try:
        client = MinerClient(answer_deadline=DEADLINE_S)  # this miner speaks unsigned JSON
        repo.upsert_miner(miner.hotkey, url)
        assert request_forecast(repo, client, miner, T0, TEST_VALIDATOR, StageRetry("query", 1, (0.0,))).outcome \
            == "requested"
        [decision] = poll_in_flight(repo, client, StageRetry("poll", 3, (0.0,)))
    finally:
        stop()
    row = repo.response_by_id(decision.response.id)
    assert decision.action == "failed" and row.status == "failed"
    assert len(row.error) <= MAX_STORED_TEXT and "\x00" not in row.error
    assert row.error.startswith(f"miner {miner.hotkey}") and "boom zzz" in row.error


def test_a_tick_lasts_at_most_waves_times_the_deadline_when_every_miner_drips(tmp_path):
    """Five dripping miners polled two at a time: three waves, each cut at the deadline."""
    from gaia_dagster.fleet import serve_miners_in_process

    deadline, concurrency, count = 1.0, 2, 5
    client = signed_client(answer_deadline=deadline)
    with serve_miners_in_process(count, tmp_path, name="all-drip", faults=["poll_drip"] * count,
                                 fault_settings={"fault_delay_s": 60.0}) as miners:
        jobs = [(url, hotkey, client.initiate_fetch(url, hotkey, TEST_VALIDATOR, T0).job_id) for hotkey, url in miners]
        started = time.monotonic()
        results = client.poll_many(jobs, concurrency=concurrency)
        elapsed = time.monotonic() - started
    waves = -(-count // concurrency)
    assert [(hotkey in str(r), "total time cap" in str(r)) for r, (_, hotkey, _) in zip(results, jobs)] == \
        [(True, True)] * count
    assert waves * deadline <= elapsed < waves * deadline + MARGIN_S, elapsed


def test_a_compressed_answer_is_refused_before_it_expands():
    """50 MB of JSON gzipped to ~50 KB: refused on its content-encoding, never decompressed."""
    import gzip

    from fastapi.responses import Response

    bomb = gzip.compress(b'{"status": "' + b"x" * (50 << 20) + b'"}')
    app = FastAPI()

    @app.post("/weather-poll-job-status")
    async def poll() -> Response:
        return Response(bomb, 200, media_type="application/json", headers={"content-encoding": "gzip"})

    url, stop = serve(app)
    try:
        client = MinerClient(answer_deadline=DEADLINE_S)
        [result] = client.poll_many([(url, "5Bomb", "job-1")])
        with pytest.raises(MinerClientError, match="compressed answer refused"):
            client.poll_job(url, "5Bomb", "job-1")
    finally:
        stop()
    assert_named_failure(result, MinerRecord("5Bomb", url, None, True, 0), "compressed answer refused (content-encoding 'gzip'")
