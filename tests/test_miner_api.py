"""The reference miner and the validator's client, over real HTTP on loopback."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import httpx
import pytest
import xarray as xr

from gaia_dagster.core.contract import ALL_VARIABLES
from gaia_dagster.core.job_ids import DeterministicJobID
from gaia_dagster.core.manifest import ManifestError, build_manifest, file_digest, parse_and_verify_manifest, verification_hash
from gaia_dagster.resources.miner import hotkey_for_uri
from gaia_dagster.resources.miner_client import MinerClient, MinerClientError, same_origin

from miner_server import running_miner, signed_client  # noqa: E402

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
URI = "//test-miner"


def wait_completed(client: MinerClient, base_url: str, hotkey: str, job_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.poll_job(base_url, hotkey, job_id).status
        if status in ("completed", "failed"):
            return status
        time.sleep(0.2)
    raise AssertionError("job did not finish")


@pytest.fixture(scope="module")
def completed_miner(tmp_path_factory):
    """A miner that has completed the T0 job; yields (base_url, hotkey, job_id, data_dir)."""
    data_dir = tmp_path_factory.mktemp("miner")
    with running_miner(data_dir, hotkey_uri=URI) as (base_url, _app):
        client = signed_client(read_timeout=10)
        hotkey = hotkey_for_uri(URI)
        answer = client.initiate_fetch(base_url, hotkey, "validator-a", T0)
        assert answer.status == "fetch_accepted"
        assert answer.job_id == DeterministicJobID.generate_weather_job_id(T0, hotkey)
        assert wait_completed(client, base_url, hotkey, answer.job_id) == "completed"
        yield base_url, hotkey, answer.job_id, data_dir


def test_a_whole_exchange_ends_in_a_verified_contract_store(completed_miner, tmp_path):
    base_url, hotkey, job_id, _ = completed_miner
    client = signed_client()
    store = client.fetch_verified_store(base_url, hotkey, job_id, tmp_path / "mirror", time_indices=[1])
    ds = xr.open_zarr(store.path, consolidated=True)
    assert set(ALL_VARIABLES) <= set(ds.data_vars) and ds.sizes["time"] == 40
    assert ds["2t"].isel(time=1).notnull().all() and ds["2t"].isel(time=2).isnull().all()  # only index 1 fetched
    assert store.manifest_hash == client.kerchunk(base_url, hotkey, job_id).verification_hash


def test_second_validator_gets_the_fast_path_and_the_same_job(completed_miner):
    base_url, hotkey, job_id, _ = completed_miner
    answer = signed_client().initiate_fetch(base_url, hotkey, "validator-b", T0)
    assert answer.status == "completed" and answer.job_id == job_id
    assert answer.zarr_store_url.startswith(base_url) and answer.access_token and answer.verification_hash


def test_wrong_hotkey_is_rejected_and_unknown_jobs_are_not_found(completed_miner):
    base_url, hotkey, _, _ = completed_miner
    client = signed_client()
    with pytest.raises(MinerClientError, match="HTTP 401"):  # signed for another miner: refused by the transport
        client.initiate_fetch(base_url, "5SomeoneElse", "validator-a", T0)
    assert client.poll_job(base_url, hotkey, "no-such-job").status == "not_found"
    assert client.kerchunk(base_url, hotkey, "no-such-job").status == "not_found"


def test_readable_key_finds_the_job_after_a_lost_id(completed_miner):
    base_url, hotkey, job_id, _ = completed_miner
    key = DeterministicJobID.weather_job_key(T0, hotkey)
    poll = signed_client().poll_job(base_url, hotkey, key)
    assert poll.status == "completed" and poll.job_id == job_id


def test_forecast_files_need_a_token_in_scope(completed_miner):
    base_url, hotkey, job_id, _ = completed_miner
    token = signed_client().kerchunk(base_url, hotkey, job_id).access_token
    manifest = f"{base_url}/forecasts/{job_id}.zarr/manifest.json"
    assert httpx.get(manifest).status_code == 401
    assert httpx.get(manifest, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 401
    assert httpx.get(manifest, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert httpx.get(f"{manifest}?token={token}").status_code == 200
    other = f"{base_url}/forecasts/other.zarr/manifest.json"
    assert httpx.get(other, headers={"Authorization": f"Bearer {token}"}).status_code == 403
    traversal = f"{base_url}/forecasts/{job_id}.zarr/%2E%2E/%2E%2E/jobs/{job_id}.json"
    assert httpx.get(traversal, headers={"Authorization": f"Bearer {token}"}).status_code in (400, 403, 404)


def test_a_tampered_chunk_fails_verification_naming_the_chunk(completed_miner, tmp_path):
    base_url, hotkey, job_id, data_dir = completed_miner
    chunk = data_dir / "forecasts" / f"{job_id}.zarr" / "2t" / "1.0.0"
    original = chunk.read_bytes()
    try:
        chunk.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
        with pytest.raises(ManifestError, match="chunk 2t/1.0.0 does not match"):
            signed_client().fetch_verified_store(base_url, hotkey, job_id, tmp_path / "m", time_indices=[1])
    finally:
        chunk.write_bytes(original)


def test_a_store_url_off_the_miner_endpoint_is_refused():
    assert same_origin("http://127.0.0.1:9000/forecasts/x", "http://127.0.0.1:9000")
    assert not same_origin("http://127.0.0.1:9001/forecasts/x", "http://127.0.0.1:9000")
    assert not same_origin("http://169.254.169.254/latest", "http://127.0.0.1:9000")


def test_offline_miner_times_out_with_a_reason_naming_it(tmp_path):
    with running_miner(tmp_path, profile="offline", hotkey_uri="//offline") as (base_url, _):
        client = signed_client(connect_timeout=1, read_timeout=0.5)
        with pytest.raises(MinerClientError, match="miner 5.* at http://127.0.0.1:.*timeout"):
            client.initiate_fetch(base_url, hotkey_for_uri("//offline"), "validator-a", T0)
        results = client.poll_many([(base_url, "hk", "job")])
        assert isinstance(results[0], MinerClientError)


def test_manifest_rules():
    files = {"b/0.0": b"\x01\x02", "a/.zarray": b"{}"}
    manifest = build_manifest(files, "5Signer")
    assert list(__import__("json").loads(manifest)["files"]) == ["a/.zarray", "b/0.0"]
    assert parse_and_verify_manifest(manifest, verification_hash(manifest), "5Signer")["files"]["b/0.0"] == \
        file_digest("b/0.0", b"\x01\x02")
    with pytest.raises(ManifestError, match="does not match the claimed"):
        parse_and_verify_manifest(manifest, "0" * 64, "5Signer")
    with pytest.raises(ManifestError, match="expected the miner"):
        parse_and_verify_manifest(manifest, verification_hash(manifest), "5Other")
