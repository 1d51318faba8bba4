"""The reference miner as a public server, over real HTTP on loopback: every refusal code of the
guard, limits enforced before a body is read, malformed paths, the access policy (allowlist, stake
table, refusing to start without either), the per-validator rate limit under a nonce flood, the
validator's capped handshake, and recovery from a real miner process restart."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import jwt
import pytest
from starlette.requests import Request

from gaia_dagster.core import fiber
from gaia_dagster.core.signing import keypair_from_uri
from gaia_dagster.fleet import free_port
from gaia_dagster.miner.access import AccessConfigError, AccessPolicy, Refused, TokenBuckets
from gaia_dagster.miner.app import MinerSettings, create_app
from gaia_dagster.miner.files import serve_forecast_file
from gaia_dagster.resources.fiber_session import FiberHandshakeError, FiberSession

sys.path.insert(0, str(Path(__file__).parent))
from miner_server import TEST_VALIDATOR, TEST_VALIDATOR_KEYPAIR, miner_process, running_miner, signed_client  # noqa: E402

POLL = "/weather-poll-job-status"
MINER = keypair_from_uri("//test-miner").ss58_address
OTHER_VALIDATOR = keypair_from_uri("//second-validator")
STRANGER = keypair_from_uri("//self-made-hotkey")
FAST_S = 2.0  # a refusal that does not wait for the body comes back well within this


@pytest.fixture(scope="module")
def miner(tmp_path_factory):
    """A miner serving the test validator and a second validator (allowlist), 64 KiB body limit."""
    allowed = (TEST_VALIDATOR, OTHER_VALIDATOR.ss58_address)
    with running_miner(tmp_path_factory.mktemp("guarded"), allowed_validators=allowed) as (base_url, app):
        yield base_url, app


def _signed(session: FiberSession, client: httpx.Client, base_url: str, miner_hotkey: str = MINER):
    """(headers, body) of one correctly signed, encrypted poll from ``session``'s validator."""
    key_uuid, key = session.key_for(client, base_url, MINER)
    body, headers = session.request(key_uuid, key, miner_hotkey, {"job_id": "no-such-job"})
    return headers, body


def _raw_exchange(base_url: str, head: str, body: bytes = b"", wait_s: float = 10.0) -> tuple[str, float]:
    """Send ``head`` (request line and headers) and ``body`` over a raw socket, then stall without
    sending the rest; (the status line answered, seconds it took)."""
    host, port = base_url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n")[0].decode(), time.monotonic() - started


def _head(path: str, headers: dict[str, str], content_length: int) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {content_length}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return "\r\n".join(lines) + "\r\n"


# -- refusal codes ---------------------------------------------------------------------------------
def test_every_refusal_has_its_code(miner):
    base_url, _ = miner
    session = FiberSession(TEST_VALIDATOR_KEYPAIR)
    with httpx.Client() as client:
        key_uuid, key = session.key_for(client, base_url, MINER)
        body = fiber.encrypt_payload(key, {"job_id": "x"})

        def send(headers):
            response = client.post(base_url + POLL, content=body, headers=headers)
            return response.status_code, response.json()["message"]

        good = session.request(key_uuid, key, MINER, {"job_id": "x"})[1]
        assert send(good)[0] == 200
        cases = {
            "replayed": (good, 401, "replayed"),
            "unsigned": ({fiber.HEADER_KEY_UUID: key_uuid}, 401, "unsigned request"),
            "stale": (fiber.request_headers(TEST_VALIDATOR_KEYPAIR, MINER, key_uuid,
                                            now_ns=time.time_ns() - 121 * 10**9), 401, "stale"),
            "future": (fiber.request_headers(TEST_VALIDATOR_KEYPAIR, MINER, key_uuid,
                                             now_ns=time.time_ns() + 121 * 10**9), 401, "from the future"),
            "wrongly signed": ({**session.request(key_uuid, key, MINER, {})[1],
                                fiber.HEADER_SIGNATURE: fiber.sign_message(STRANGER, "x")}, 401, "bad signature"),
            "foreign key id": (fiber.request_headers(TEST_VALIDATOR_KEYPAIR, MINER, fiber.new_key_uuid()),
                               400, fiber.NO_KEY_MESSAGE),
            "wrong miner-hotkey": (fiber.request_headers(TEST_VALIDATOR_KEYPAIR, STRANGER.ss58_address, key_uuid),
                                   401, "not this miner"),
            "not allowlisted": (fiber.request_headers(STRANGER, MINER, key_uuid), 403, "not in this miner's allowlist"),
            "overlong header": ({**good, fiber.HEADER_NONCE: "1" * 500}, 401, "too long"),
        }
        for name, (headers, status, phrase) in cases.items():
            got, message = send(headers)
            assert (got, phrase in message, MINER in message) == (status, True, True), (name, got, message)


def test_a_stranger_cannot_even_exchange_a_key(miner):
    with httpx.Client() as client, pytest.raises(FiberHandshakeError, match="HTTP 403"):
        FiberSession(STRANGER).handshake(client, miner[0], MINER)


def test_a_huge_declared_body_is_refused_413_before_it_is_read(miner):
    """Headers announcing 10 GiB, then a stall: 413 at once, nothing read (even correctly signed)."""
    base_url, _ = miner
    with httpx.Client() as client:
        headers, _ = _signed(FiberSession(TEST_VALIDATOR_KEYPAIR), client, base_url)
    status, seconds = _raw_exchange(base_url, _head(POLL, headers, 10 << 30), b"x" * 100)
    assert status.startswith("HTTP/1.1 413") and seconds < FAST_S, (status, seconds)


def test_a_streamed_body_is_cut_at_the_limit(miner):
    """A signed request with a chunked body and no length: answered 413 once 64 KiB have come."""
    base_url, _ = miner
    with httpx.Client() as client:
        headers, _ = _signed(FiberSession(TEST_VALIDATOR_KEYPAIR), client, base_url)

        def endless():
            for _ in range(1000):  # 100 MB if nobody stopped it
                yield b"x" * 100_000

        response = client.post(base_url + POLL, content=endless(), headers=headers)
    assert response.status_code == 413 and "65536-byte limit" in response.text


@pytest.mark.parametrize("who", ["unsigned", "stranger"])
def test_the_headers_are_judged_before_the_body_is_read(miner, who):
    """A body under the limit is announced and never sent: the refusal comes without waiting for it."""
    base_url, _ = miner
    headers = {} if who == "unsigned" else fiber.request_headers(STRANGER, MINER, fiber.new_key_uuid())
    status, seconds = _raw_exchange(base_url, _head(POLL, headers, 60_000))
    expected = "HTTP/1.1 401" if who == "unsigned" else "HTTP/1.1 403"
    assert status.startswith(expected) and seconds < FAST_S, (status, seconds)


@pytest.mark.parametrize("path, status", [
    ("/forecasts/%00", 400), ("/forecasts/x.zarr%00/manifest.json", 400), ("/weather-poll-job-status%00", 400),
    ("/forecasts/x.zarr/../../jobs/a.json", 400), ("/forecasts/x.zarr/%2e%2e/jobs", 400),
    ("/forecasts/%5C..%5Cjobs", 400), ("/forecasts/" + "a" * 5000, 414), ("/forecasts/%ff%fe", 401),
])
def test_malformed_paths_are_4xx_never_5xx(miner, path, status):
    base_url, _ = miner
    got, _ = _raw_exchange(base_url, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer x\r\n")
    assert got.startswith(f"HTTP/1.1 {status}"), (path, got)


def test_a_nul_path_with_a_valid_token_is_not_a_server_error(miner):
    """Past the ASGI check (called directly), the file route itself answers a NUL path 404, not 500."""
    _, app = miner
    state = app.state.miner
    token = jwt.encode({"file_path": "x.zarr", "exp": int(time.time()) + 60}, state.settings.jwt_secret, "HS256")
    request = Request({"type": "http", "method": "GET", "path": "/forecasts/x.zarr/\x00", "query_string": b"",
                       "headers": [(b"authorization", f"Bearer {token}".encode())]})
    assert serve_forecast_file(state, "x.zarr/\x00", request).status_code == 404


# -- access policy -------------------------------------------------------------------------------
def test_a_miner_without_allowlist_or_stake_table_refuses_to_start(tmp_path):
    with pytest.raises(AccessConfigError, match="--dev-open-access"):
        create_app(MinerSettings(hotkey_uri="//x", profile="good", data_dir=tmp_path))
    import subprocess

    done = subprocess.run([sys.executable, "-m", "gaia_dagster.miner", "--port", str(free_port()),
                           "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "refusing to start" in done.stderr and "--allow-validator" in done.stderr
    assert create_app(MinerSettings(hotkey_uri="//x", profile="good", data_dir=tmp_path, dev_open_access=True))


def test_the_stake_table_admits_staked_validators_and_is_reread(tmp_path):
    table = tmp_path / "stakes.json"
    table.write_text(json.dumps({TEST_VALIDATOR: 5000, STRANGER.ss58_address: 10}))
    with running_miner(tmp_path / "m", stake_table=table, min_validator_stake=1000, dev_open_access=False) as (url, _):
        client = signed_client()
        assert client.poll_job(url, MINER, "j").status == "not_found"
        with httpx.Client() as http, pytest.raises(FiberHandshakeError, match=r"HTTP 403"):
            FiberSession(STRANGER).handshake(http, url, MINER)
        table.write_text(json.dumps({TEST_VALIDATOR: 5, STRANGER.ss58_address: 2000}))
        with httpx.Client() as http:
            FiberSession(STRANGER).handshake(http, url, MINER)  # now staked: served
        with pytest.raises(Exception, match="HTTP 403"):
            client.poll_job(url, MINER, "j")  # unstaked now: refused


def test_a_bad_stake_table_stops_the_start_and_a_bad_update_keeps_the_last_good_one(tmp_path):
    table = tmp_path / "stakes.json"
    table.write_text('{"5Abc": "lots"}')
    with pytest.raises(AccessConfigError, match="not a number"):
        AccessPolicy(stake_table=table)
    table.write_text(json.dumps({"5Abc": 1000}))
    policy = AccessPolicy(stake_table=table, min_stake=1000)
    policy.check("5Abc")
    table.write_text("{not json")
    policy.check("5Abc")
    with pytest.raises(Refused) as refused:
        policy.check("5Other")
    assert refused.value.status == 403 and "its stake 0 is below 1000" in refused.value.reason


def test_token_buckets_refill_at_their_rate():
    buckets = TokenBuckets(rate_per_s=2, burst=3)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [None, None, None]
    assert buckets.take("a", now=0.0) == pytest.approx(0.5)
    assert buckets.take("b", now=0.0) is None  # another validator's bucket is its own
    assert buckets.take("a", now=0.5) is None and buckets.take("a", now=0.5) is not None


# -- rate limit ------------------------------------------------------------------------------------
def test_a_validator_past_its_rate_is_429_and_the_other_is_not(tmp_path):
    allowed = (TEST_VALIDATOR, OTHER_VALIDATOR.ss58_address)
    with running_miner(tmp_path, allowed_validators=allowed, rate_per_s=0.5, rate_burst=3) as (url, _):
        session = FiberSession(TEST_VALIDATOR_KEYPAIR)
        with httpx.Client() as client:
            codes = [client.post(url + POLL, content=b, headers=h).status_code
                     for h, b in (_signed(session, client, url) for _ in range(4))]
            headers, body = _signed(session, client, url)
            limited = client.post(url + POLL, content=body, headers=headers)
            other = FiberSession(OTHER_VALIDATOR).post(client, url, POLL, MINER, {"job_id": "x"})
    assert codes == [200, 200, 429, 429]  # the handshake took the first token
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "rate limited" in limited.json()["message"]
    assert other.status_code == 200


def test_a_nonce_flood_from_one_hotkey_does_not_starve_another_validator(tmp_path):
    """A real miner process, default limits: one allowlisted hotkey floods correctly signed requests
    with fresh nonces from 6 threads for 8 s while a second validator polls every 0.25 s."""
    flooder = keypair_from_uri("//flooding-validator")
    port = free_port()
    with miner_process(tmp_path, port, "//test-miner", "--allow-validator", flooder.ss58_address,
                       "--allow-validator", TEST_VALIDATOR) as url:
        stop = threading.Event()
        flood_codes: list[int] = []
        session = FiberSession(flooder)
        with httpx.Client() as client:
            key_uuid, key = session.key_for(client, url, MINER)
        body = fiber.encrypt_payload(key, {"job_id": "flood"})

        def flood() -> None:
            with httpx.Client(timeout=30) as client:
                while not stop.is_set():
                    headers = fiber.request_headers(flooder, MINER, key_uuid)
                    flood_codes.append(client.post(url + POLL, content=body, headers=headers).status_code)

        threads = [threading.Thread(target=flood) for _ in range(6)]
        for t in threads:
            t.start()
        honest, latencies = signed_client(read_timeout=10), []
        try:
            time.sleep(0.5)
            for _ in range(30):
                started = time.monotonic()
                assert honest.poll_job(url, MINER, "job-1").status == "not_found"
                latencies.append(time.monotonic() - started)
                time.sleep(0.25)
        finally:
            stop.set()
            for t in threads:
                t.join()
    ok, limited = flood_codes.count(200), flood_codes.count(429)
    print(f"flood: {len(flood_codes)} requests, {ok} served, {limited} refused 429; honest validator: 30/30 "
          f"served, slowest {max(latencies):.3f} s")
    assert limited > ok and set(flood_codes) <= {200, 429}
    assert ok <= 100 + 20 * 12  # the burst plus 20/s over the flood's span, at most
    assert max(latencies) < 2.0


# -- the validator's handshake caps ------------------------------------------------------------------
def _hostile_key_server(answer):  # noqa: ANN001 - an async endpoint body
    from fastapi import FastAPI

    from test_client_limits import serve

    app = FastAPI()
    app.get(fiber.PUBLIC_KEY_PATH)(answer)
    return serve(app)


@pytest.mark.parametrize("kind", ["drip", "huge", "gzip"])
def test_the_handshake_is_capped_in_time_and_size(kind):
    import asyncio
    import gzip

    from fastapi.responses import Response, StreamingResponse

    async def answer():  # noqa: ANN202
        if kind == "huge":
            return Response(b'{"public_key": "' + b"A" * (8 << 20) + b'"}', media_type="application/json")
        if kind == "gzip":
            return Response(gzip.compress(b'{"public_key": "' + b"A" * (8 << 20) + b'"}'),
                            media_type="application/json", headers={"content-encoding": "gzip"})

        async def drip():
            for _ in range(600):
                yield b" "
                await asyncio.sleep(0.1)
        return StreamingResponse(drip(), media_type="application/json")

    url, server, thread = _hostile_key_server(answer)
    try:
        started = time.monotonic()
        with httpx.Client() as client, pytest.raises(FiberHandshakeError) as failed:
            FiberSession(TEST_VALIDATOR_KEYPAIR).handshake(client, url, MINER, deadline_s=1.0)
        elapsed = time.monotonic() - started
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    phrase = {"drip": "handshake deadline", "huge": "at most 65536 bytes", "gzip": "content-encoding 'gzip'"}[kind]
    assert phrase in str(failed.value) and MINER in str(failed.value) and elapsed < 1.8, (str(failed.value), elapsed)


# -- a real restart --------------------------------------------------------------------------------
class CountingSession(FiberSession):
    """A Fiber session that counts its handshakes."""

    handshakes = 0

    def handshake_steps(self, base_url, miner_hotkey):  # noqa: ANN001, ANN202
        self.handshakes += 1
        return super().handshake_steps(base_url, miner_hotkey)


def test_the_client_recovers_from_a_real_miner_process_restart(tmp_path):
    """Start the miner process, ask for a forecast, kill -9 it and start it again on the same port
    and data: a new RSA key, every symmetric key lost. The client's next request succeeds, with one
    new handshake; the miner kept the job (failed: restarted during inference)."""
    from datetime import datetime, timezone

    from gaia_dagster.resources.miner_client import MinerClient

    session = CountingSession(TEST_VALIDATOR_KEYPAIR)
    client = MinerClient(fiber=session, read_timeout=10)
    port, args = free_port(), ("--allow-validator", TEST_VALIDATOR, "--inference-delay", "3600")
    with miner_process(tmp_path, port, "//test-miner", *args) as url:
        job = client.initiate_fetch(url, MINER, TEST_VALIDATOR, datetime(2026, 10, 20, tzinfo=timezone.utc))
        assert job.status == "fetch_accepted"
        first_pem = httpx.get(url + fiber.PUBLIC_KEY_PATH).json()["public_key"]
        old_uuid, old_key = session.cached_key(url, MINER)
    assert session.handshakes == 1
    with miner_process(tmp_path, port, "//test-miner", *args) as url:
        assert httpx.get(url + fiber.PUBLIC_KEY_PATH).json()["public_key"] != first_pem
        stale = httpx.post(url + POLL, content=fiber.encrypt_payload(old_key, {"job_id": job.job_id}),
                           headers=fiber.request_headers(TEST_VALIDATOR_KEYPAIR, MINER, old_uuid))
        assert stale.status_code == 400 and fiber.NO_KEY_MESSAGE in stale.text
        polled = client.poll_job(url, MINER, job.job_id)
        assert session.handshakes == 2 and session.cached_key(url, MINER)[0] != old_uuid
        assert (polled.status, "restarted" in polled.message) == ("failed", True)
        assert client.poll_job(url, MINER, job.job_id).status == "failed" and session.handshakes == 2
