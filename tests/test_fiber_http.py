"""The Fiber transport over real HTTP on loopback: the reference miner's refusals (401/400/403) and
the validator's recovery from a miner restart by redoing the handshake."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from gaia_dagster.core import fiber
from gaia_dagster.core.signing import keypair_from_uri
from gaia_dagster.resources.fiber_session import FiberSession

sys.path.insert(0, str(Path(__file__).parent))
from miner_server import TEST_VALIDATOR_KEYPAIR, running_miner  # noqa: E402

POLL = "/weather-poll-job-status"
MINER = keypair_from_uri("//test-miner").ss58_address


@pytest.fixture(scope="module")
def miner(tmp_path_factory):
    with running_miner(tmp_path_factory.mktemp("fiber-miner")) as (base_url, _app):
        yield base_url


def _poll(session, client, base_url, miner_hotkey=MINER):
    return session.post(client, base_url, POLL, miner_hotkey, {"job_id": "no-such-job"})


def test_an_encrypted_poll_is_answered_in_plain_json(miner):
    with httpx.Client() as client:
        response = _poll(FiberSession(TEST_VALIDATOR_KEYPAIR), client, miner)
    assert response.status_code == 200 and response.json()["status"] == "not_found"


def test_refusals_carry_fibers_codes(miner):
    session = FiberSession(TEST_VALIDATOR_KEYPAIR)
    with httpx.Client() as client:
        key_uuid, key = session.key_for(client, miner, MINER)
        url = miner + POLL

        def send(headers, body=None):
            return client.post(url, content=body if body is not None else fiber.encrypt_payload(key, {"job_id": "x"}),
                               headers=headers).status_code

        good = session.request(key_uuid, key, MINER, {"job_id": "x"})[1]
        assert send(good) == 200
        assert send(good) == 401, "replayed"
        unsigned = {fiber.HEADER_KEY_UUID: key_uuid, "content-type": fiber.BODY_CONTENT_TYPE}
        assert send(unsigned) == 401, "unsigned"
        stale = fiber.request_headers(TEST_VALIDATOR_KEYPAIR, MINER, key_uuid, now_ns=1_700_000_000_000_000_000)
        assert send(stale) == 401, "stale"
        wrong = session.request(key_uuid, key, MINER, {"job_id": "x"})[1]
        wrong[fiber.HEADER_SIGNATURE] = fiber.sign_message(keypair_from_uri("//someone-else"), "x")
        assert send(wrong) == 401, "wrongly signed"
        foreign = fiber.request_headers(TEST_VALIDATOR_KEYPAIR, MINER, fiber.new_key_uuid())
        response = client.post(url, content=fiber.encrypt_payload(key, {"job_id": "x"}), headers=foreign)
        assert response.status_code == 400 and fiber.NO_KEY_MESSAGE in response.text, "foreign key id"
        other_miner = keypair_from_uri("//another-miner").ss58_address
        assert send(fiber.request_headers(TEST_VALIDATOR_KEYPAIR, other_miner, key_uuid)) == 401, "wrong miner-hotkey"


def test_a_validator_outside_the_allowlist_is_refused_403(tmp_path):
    with running_miner(tmp_path, allowed_validators=("5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",)) as (url, _):
        with httpx.Client() as client, pytest.raises(Exception, match="HTTP 403"):
            FiberSession(TEST_VALIDATOR_KEYPAIR).handshake(client, url, MINER)


def test_the_validator_redoes_the_handshake_after_a_miner_restart(tmp_path):
    session = FiberSession(TEST_VALIDATOR_KEYPAIR)
    with running_miner(tmp_path) as (url, app):
        with httpx.Client() as client:
            assert _poll(session, client, url).status_code == 200
            first = session.cached_key(url, MINER)
            # a restart: new RSA key, every symmetric key lost
            from gaia_dagster.miner.guard import FiberKeys
            app.state.miner.guard.keys = FiberKeys()
            assert _poll(session, client, url).status_code == 200
            assert session.cached_key(url, MINER)[0] != first[0]


def test_the_client_and_its_poll_path_recover_from_a_restart_by_redoing_the_handshake(tmp_path):
    from gaia_dagster.miner.guard import FiberKeys
    from miner_server import signed_client

    client = signed_client()
    with running_miner(tmp_path) as (url, app):
        assert client.poll_job(url, MINER, "no-such-job").status == "not_found"
        app.state.miner.guard.keys = FiberKeys()  # restart: new RSA key, symmetric keys lost
        [polled] = client.poll_many([(url, MINER, "no-such-job")])
        assert polled.status == "not_found"
        app.state.miner.guard.keys = FiberKeys()
        assert client.kerchunk(url, MINER, "no-such-job").status == "not_found"


def test_self_signed_certificates_are_accepted_only_for_the_listed_miners():
    from gaia_dagster.resources.miner import MinerAccess
    from gaia_dagster.resources.miner_client import tls_context

    client = MinerAccess(self_signed_miner_urls=["https://10.0.0.7:8091/"]).client()
    assert client._verify("https://10.0.0.7:8091") is False
    assert client._verify("https://10.0.0.8:8091") is tls_context()
