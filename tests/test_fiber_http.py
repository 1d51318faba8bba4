"""The Fiber transport over real HTTP on loopback: an encrypted exchange, and the validator's recovery
from a miner that lost its keys by redoing the handshake (every refusal code, and a real process
restart, are in tests/test_miner_guard.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

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
