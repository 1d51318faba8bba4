"""The signed validator -> miner transport: the pure rule, and a real miner over loopback HTTP."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import httpx
import pytest

from gaia_dagster.core.signing import keypair_from_uri
from gaia_dagster.core.transport import (
    HEADER_NONCE, HEADER_SIGNATURE, HEADER_VALIDATOR, NonceCache, SignedTransport, TransportRejected, now_in_ms,
    sign_request, signed_message, verify_request,
)
from gaia_dagster.resources.miner import MinerAccess
from gaia_dagster.resources.miner_client import MinerClient, MinerClientError

from miner_server import TEST_VALIDATOR, TEST_VALIDATOR_KEYPAIR, running_miner, signed_client  # noqa: E402

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
MINER_URI = "//transport-miner"
MINER = keypair_from_uri(MINER_URI).ss58_address
STRANGER = keypair_from_uri("//not-allowlisted-validator")
BODY = b'{"nonce":null,"data":{"job_id":"job-1"}}'
NOW = 1_800_000_000_000


# -- the pure rule ------------------------------------------------------------------------------
def test_a_signed_request_verifies_to_its_validator():
    headers = sign_request(TEST_VALIDATOR_KEYPAIR, MINER, BODY, now_ms=NOW)
    assert headers[HEADER_VALIDATOR] == TEST_VALIDATOR
    assert headers[HEADER_NONCE].startswith(f"{NOW}-")
    message = signed_message(headers[HEADER_NONCE], TEST_VALIDATOR, MINER, BODY)
    assert message.decode().split(".")[1:3] == [TEST_VALIDATOR, MINER]
    assert verify_request(headers, BODY, MINER, now_ms=NOW + 59_000) == TEST_VALIDATOR
    lowered = {k.lower(): v for k, v in headers.items()}  # header names are case-insensitive
    assert verify_request(lowered, BODY, MINER, now_ms=NOW) == TEST_VALIDATOR


def test_each_signature_has_a_fresh_nonce():
    a = SignedTransport(TEST_VALIDATOR_KEYPAIR).headers(MINER, BODY)
    b = SignedTransport(TEST_VALIDATOR_KEYPAIR).headers(MINER, BODY)
    assert a[HEADER_NONCE] != b[HEADER_NONCE]


@pytest.mark.parametrize("missing", [HEADER_VALIDATOR, HEADER_NONCE, HEADER_SIGNATURE])
def test_a_missing_header_is_401(missing):
    headers = sign_request(TEST_VALIDATOR_KEYPAIR, MINER, BODY, now_ms=NOW)
    del headers[missing]
    with pytest.raises(TransportRejected, match=f"missing {missing}") as err:
        verify_request(headers, BODY, MINER, now_ms=NOW)
    assert err.value.status == 401


def _rejected(headers, body=BODY, miner=MINER, now_ms=NOW, **kw) -> TransportRejected:  # noqa: ANN001
    with pytest.raises(TransportRejected) as err:
        verify_request(headers, body, miner, now_ms=now_ms, **kw)
    return err.value


def test_bad_signatures_are_401():
    headers = sign_request(TEST_VALIDATOR_KEYPAIR, MINER, BODY, now_ms=NOW)
    assert _rejected(headers, body=BODY + b" ").status == 401  # body altered after signing
    assert "bad signature" in _rejected(headers, miner=keypair_from_uri("//other-miner").ss58_address).reason
    assert _rejected({**headers, HEADER_VALIDATOR: STRANGER.ss58_address}).status == 401  # claims another signer
    assert _rejected({**headers, HEADER_SIGNATURE: "zz"}).status == 401
    assert _rejected({**headers, HEADER_SIGNATURE: "00" * 64}).status == 401
    assert _rejected({**headers, HEADER_VALIDATOR: "not-an-ss58"}).status == 401
    assert _rejected({**headers, HEADER_NONCE: f"{NOW}-ff"}).status == 401  # nonce changed after signing


def test_stale_future_and_malformed_nonces_are_401():
    headers = sign_request(TEST_VALIDATOR_KEYPAIR, MINER, BODY, now_ms=NOW)
    assert "stale" in _rejected(headers, now_ms=NOW + 60_001).reason
    assert "future" in _rejected(headers, now_ms=NOW - 60_001).reason
    for nonce in ("", "abc", f"{NOW}", f"{NOW}-", f"{NOW}-xyz", f"-{NOW}", "1" * 200 + "-ab"):
        assert _rejected({**headers, HEADER_NONCE: nonce}).status == 401


def test_the_allowlist_refuses_other_validators_with_403():
    headers = sign_request(STRANGER, MINER, BODY, now_ms=NOW)
    err = _rejected(headers, allowed_validators=[TEST_VALIDATOR])
    assert err.status == 403 and STRANGER.ss58_address in err.reason
    assert verify_request(headers, BODY, MINER, now_ms=NOW, allowed_validators=None) == STRANGER.ss58_address


def test_the_nonce_cache_refuses_a_replay_and_forgets_expired_nonces():
    cache = NonceCache()
    headers = sign_request(TEST_VALIDATOR_KEYPAIR, MINER, BODY, now_ms=NOW)
    assert verify_request(headers, BODY, MINER, now_ms=NOW, nonces=cache) == TEST_VALIDATOR
    err = _rejected(headers, nonces=cache)
    assert err.status == 401 and "replayed" in err.reason
    cache.check_and_add("v", "1-aa", expires_ms=NOW)
    assert len(cache) == 2
    cache.check_and_add("v", "2-bb", expires_ms=NOW + 10, now_ms=NOW + 60_001)  # both earlier entries expired
    assert len(cache) == 1


def test_a_full_nonce_cache_fails_closed():
    cache = NonceCache(max_entries=2)
    cache.check_and_add("v", "1-aa", expires_ms=NOW + 10, now_ms=NOW)
    cache.check_and_add("v", "1-bb", expires_ms=NOW + 10, now_ms=NOW)
    with pytest.raises(TransportRejected) as err:
        cache.check_and_add("v", "1-cc", expires_ms=NOW + 10, now_ms=NOW)
    assert err.value.status == 503
    cache.check_and_add("v", "1-cc", expires_ms=NOW + 100, now_ms=NOW + 11)  # room again once expired


# -- over real HTTP -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def miner(tmp_path_factory):
    """A miner that accepts only the test validator: yields its base URL."""
    with running_miner(tmp_path_factory.mktemp("transport-miner"), hotkey_uri=MINER_URI,
                       allowed_validators=(TEST_VALIDATOR,)) as (base_url, _app):
        yield base_url


def _post(base_url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{base_url}/weather-poll-job-status", content=body,
                      headers={"content-type": "application/json", **headers})


def test_a_signed_request_is_answered(miner):
    assert signed_client().poll_job(miner, MINER, "no-such-job").status == "not_found"
    response = _post(miner, BODY, sign_request(TEST_VALIDATOR_KEYPAIR, MINER, BODY))
    assert response.status_code == 200 and response.json()["status"] == "not_found"
    results = signed_client().poll_many([(miner, MINER, "job-a"), (miner, MINER, "job-b")])
    assert [r.status for r in results] == ["not_found", "not_found"]


def test_an_unsigned_request_is_401(miner):
    response = _post(miner, BODY, {})
    assert response.status_code == 401 and "unsigned request" in response.json()["message"]
    with pytest.raises(MinerClientError, match=rf"miner {MINER} at {miner}.*HTTP 401"):
        MinerClient().poll_job(miner, MINER, "job-1")


def test_a_validator_outside_the_allowlist_is_403(miner):
    response = _post(miner, BODY, sign_request(STRANGER, MINER, BODY))
    assert response.status_code == 403 and STRANGER.ss58_address in response.json()["message"]
    with pytest.raises(MinerClientError, match="HTTP 403"):
        signed_client(STRANGER).kerchunk(miner, MINER, "job-1")


def test_a_replayed_request_is_401(miner):
    headers = sign_request(TEST_VALIDATOR_KEYPAIR, MINER, BODY)
    assert _post(miner, BODY, headers).status_code == 200
    replay = _post(miner, BODY, headers)
    assert replay.status_code == 401 and "replayed" in replay.json()["message"]


def test_a_nonce_older_than_60_seconds_is_401(miner):
    headers = sign_request(TEST_VALIDATOR_KEYPAIR, MINER, BODY, now_ms=now_in_ms() - 61_000)
    response = _post(miner, BODY, headers)
    assert response.status_code == 401 and "stale" in response.json()["message"]


def test_a_body_altered_after_signing_is_401(miner):
    headers = sign_request(TEST_VALIDATOR_KEYPAIR, MINER, BODY)
    altered = json.dumps({"nonce": None, "data": {"job_id": "job-2"}}).encode()
    response = _post(miner, altered, headers)
    assert response.status_code == 401 and "bad signature" in response.json()["message"]


def test_the_miner_hotkey_is_bound_into_the_signature(miner):
    other_miner = keypair_from_uri("//other-miner").ss58_address
    response = _post(miner, BODY, sign_request(TEST_VALIDATOR_KEYPAIR, other_miner, BODY))
    assert response.status_code == 401


def test_every_post_endpoint_requires_the_transport(miner):
    for path in ("/weather-initiate-fetch", "/weather-poll-job-status", "/weather-kerchunk-request"):
        assert httpx.post(f"{miner}{path}", json={"nonce": None, "data": {}}).status_code == 401


def test_an_unsigned_miner_still_answers_unsigned_clients(tmp_path):
    with running_miner(tmp_path, hotkey_uri=MINER_URI, require_signature=False) as (base_url, _):
        assert MinerClient().poll_job(base_url, MINER, "job-1").status == "not_found"


def test_the_validator_resource_signs_with_its_hotkey(tmp_path):
    access = MinerAccess(validator_hotkey_uri="//transport-validator")
    with running_miner(tmp_path, hotkey_uri=MINER_URI, allowed_validators=(access.validator_hotkey(),),
                       inference_delay_s=3600) as (url, _):
        assert access.client().poll_job(url, MINER, "job-1").status == "not_found"
        assert access.client().initiate_fetch(url, MINER, access.validator_hotkey(), T0).status == "fetch_accepted"
