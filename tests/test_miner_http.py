"""The reference miner and the validator's miner client over real HTTP on loopback.

Each miner is the real FastAPI app served by uvicorn in a background thread on a free port; the
forecasts come from the embedded world at a coarse 5 degree grid for speed.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import jwt
import numpy as np
import pytest
import xarray as xr
from cryptography.fernet import Fernet

from gaia_dagster.core.contract import ALL_VARIABLES, Grid, contract_problems
from gaia_dagster.core.job_ids import DeterministicJobID
from gaia_dagster.core.manifest import ManifestError
from gaia_dagster.core.signing import keypair_from_uri
from gaia_dagster.miner.app import MinerSettings, create_app
from gaia_dagster.core import fiber
from gaia_dagster.resources.fiber_session import FiberSession
from gaia_dagster.resources.miner_client import MinerClient, MinerClientError, PollResult
from gaia_dagster.core.store_limits import ArraySpec
from gaia_dagster.resources.store_fetch import select_chunks

from gaia_dagster.fleet import free_port  # noqa: E402
from miner_server import TEST_VALIDATOR_KEYPAIR, running_miner, signed_client  # noqa: E402

RESOLUTION = 5.0
T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
MINER_URI = "//gaia-miner-http-0"
MINER_HOTKEY = keypair_from_uri(MINER_URI).ss58_address
KEEP_POLLING = {"received", "running_inference", "processing_output"}


def serving_miner(data_dir: Path, profile: str = "good", hotkey_uri: str = MINER_URI, **settings):
    """A real miner on loopback at this file's resolution (see tests/miner_server.py)."""
    return running_miner(data_dir, profile=profile, hotkey_uri=hotkey_uri, resolution=RESOLUTION, **settings)


def poll_until_done(client: MinerClient, base_url: str, hotkey: str, job_id: str, timeout: float = 60) -> list[str]:
    """Every status seen while polling until the job completes or fails."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.poll_job(base_url, hotkey, job_id).status
        if not seen or seen[-1] != status:
            seen.append(status)
        if status not in KEEP_POLLING:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {seen[-1]} after {timeout} s")


@pytest.fixture(scope="module")
def good_miner(tmp_path_factory):
    """A good miner that has completed the T0 job: (base_url, app, job_id, data_dir, statuses seen)."""
    data_dir = tmp_path_factory.mktemp("good-miner")
    with serving_miner(data_dir) as (base_url, app):
        client = signed_client(read_timeout=10)
        answer = client.initiate_fetch(base_url, MINER_HOTKEY, "validator-a", T0)
        assert answer.status == "fetch_accepted", answer
        statuses = poll_until_done(client, base_url, MINER_HOTKEY, answer.job_id)
        yield base_url, app, answer.job_id, data_dir, statuses


def _store_dir(data_dir: Path, job_id: str) -> Path:
    return data_dir / "forecasts" / f"{job_id}.zarr"


def test_initiate_poll_kerchunk_fetch_yields_a_contract_store(good_miner, tmp_path):
    base_url, _, job_id, data_dir, statuses = good_miner
    assert job_id == DeterministicJobID.generate_weather_job_id(T0, MINER_HOTKEY)
    assert statuses[-1] == "completed" and set(statuses[:-1]) <= KEEP_POLLING
    client = signed_client()
    answer = client.kerchunk(base_url, MINER_HOTKEY, job_id)
    assert answer.status == "completed" and answer.zarr_store_url == f"{base_url}/forecasts/{job_id}.zarr"

    store = client.fetch_verified_store(base_url, MINER_HOTKEY, job_id, tmp_path / "mirror", time_indices=[0, 3])
    ds = xr.open_zarr(store.path, consolidated=True)
    assert set(ALL_VARIABLES) <= set(ds.data_vars) and ds.sizes["time"] == 40
    assert contract_problems(ds, Grid(RESOLUTION), T0) == []
    assert ds.attrs["forecast_start_time"].startswith("2026-10-20T00:00:00")
    assert store.manifest_hash == answer.verification_hash
    assert ds["t"].isel(time=3).notnull().all() and ds["t"].isel(time=1).isnull().all()  # only 0 and 3 fetched
    n_store_files = sum(1 for p in _store_dir(data_dir, job_id).rglob("*") if p.is_file())
    assert 0 < store.files_fetched < n_store_files / 5 and store.bytes_fetched > 0

    from gaia_dagster.world.atmosphere import SyntheticAtmosphere
    from gaia_dagster.world.forecasts import forecast_step

    expected = forecast_step(SyntheticAtmosphere(resolution=RESOLUTION), "good", T0, 24, member=MINER_HOTKEY)
    np.testing.assert_allclose(ds["z"].isel(time=3).values, expected["z"].values, rtol=1e-6)


def test_chunk_selection_keeps_coordinates_and_the_wanted_time_chunks():
    f4 = np.dtype("float32")
    t = ArraySpec("t", ("time", "pressure_level", "lat", "lon"), (40, 13, 37, 72), (1, 1, 37, 72), f4, None, ".", "")
    t2 = ArraySpec("2t", ("time", "lat", "lon"), (40, 37, 72), (2, 37, 72), f4, None, "/", "c")
    time = ArraySpec("time", ("time",), (40,), (40,), np.dtype("int64"), None, ".", "")
    lat = ArraySpec("lat", ("lat",), (37,), (37,), f4, None, ".", "")
    kinds = {"t/0.0.0.0": t, "t/3.12.0.0": t, "t/4.0.0.0": t, "2t/c/1/0/0": t2, "2t/c/2/0/0": t2,
             "time/0": time, "lat/0": lat, "t/.zarray": None}
    assert select_chunks(kinds, [3]) == ["2t/c/1/0/0", "lat/0", "t/3.12.0.0", "time/0"]
    assert select_chunks(kinds, None) == sorted(k for k, v in kinds.items() if v is not None)
    assert select_chunks(kinds, []) == ["lat/0", "time/0"]


def test_second_validator_takes_the_fast_path_to_the_same_job(good_miner):
    base_url, _, job_id, _, _ = good_miner
    answer = signed_client().initiate_fetch(base_url, MINER_HOTKEY, "validator-b", T0)
    assert answer.status == "completed" and answer.job_id == job_id
    assert answer.zarr_store_url.startswith(base_url) and answer.access_token and answer.verification_hash


def test_a_request_for_another_hotkey_is_rejected(good_miner):
    base_url = good_miner[0]
    other = keypair_from_uri("//someone-else").ss58_address
    with pytest.raises(MinerClientError, match=rf"miner {other} at {base_url}.*HTTP 401"):
        signed_client().initiate_fetch(base_url, other, "validator-a", T0)  # signed for another miner
    with httpx.Client() as http:  # sent to this miner, but asking for another hotkey's forecast
        answer = FiberSession(TEST_VALIDATOR_KEYPAIR).post(http, base_url, "/weather-initiate-fetch", MINER_HOTKEY, {
            "forecast_start_time": T0.isoformat(), "expected_miner_hotkey": other}).json()
    assert answer["status"] == "fetch_rejected" and other in answer["message"]


def test_unknown_jobs_are_not_found(good_miner):
    base_url = good_miner[0]
    client = signed_client()
    assert client.poll_job(base_url, MINER_HOTKEY, "no-such-job").status == "not_found"
    assert client.kerchunk(base_url, MINER_HOTKEY, "no-such-job").status == "not_found"
    session = FiberSession(TEST_VALIDATOR_KEYPAIR)
    with httpx.Client() as http:
        key_uuid, key = session.key_for(http, base_url, MINER_HOTKEY)
        not_json = Fernet(fiber.validator_fernet_key(key)).encrypt(b"{not json")
        bad = http.post(f"{base_url}/weather-poll-job-status", content=not_json,
                        headers=session.request(key_uuid, key, MINER_HOTKEY, {})[1])
        bad_time = session.post(http, base_url, "/weather-initiate-fetch", MINER_HOTKEY,
                                {"forecast_start_time": "yesterday", "expected_miner_hotkey": MINER_HOTKEY})
    assert bad.status_code == 400 and bad.json()["status"] == "error"
    assert bad_time.status_code == 400 and MINER_HOTKEY in bad_time.json()["message"]


def test_store_files_need_a_valid_token_in_scope(good_miner):
    base_url, app, job_id, _, _ = good_miner
    token = signed_client().kerchunk(base_url, MINER_HOTKEY, job_id).access_token
    bearer = {"Authorization": f"Bearer {token}"}
    manifest_url = f"{base_url}/forecasts/{job_id}.zarr/manifest.json"
    assert httpx.get(manifest_url).status_code == 401
    assert httpx.get(manifest_url, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 401
    expired = jwt.encode({"job_id": job_id, "file_path": f"{job_id}.zarr", "exp": int(time.time()) - 5},
                         app.state.miner.settings.jwt_secret, algorithm="HS256")
    assert httpx.get(manifest_url, headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    forged = jwt.encode({"job_id": job_id, "file_path": f"{job_id}.zarr", "exp": int(time.time()) + 60},
                        "not-the-secret-" * 4, algorithm="HS256")
    assert httpx.get(manifest_url, headers={"Authorization": f"Bearer {forged}"}).status_code == 401

    assert httpx.get(manifest_url, headers=bearer).status_code == 200
    assert httpx.get(f"{manifest_url}?token={token}").status_code == 200
    head = httpx.head(manifest_url, headers=bearer)
    assert head.status_code == 200 and int(head.headers["content-length"]) > 0
    assert httpx.get(f"{base_url}/forecasts/{job_id}.zarr/no-such-file", headers=bearer).status_code == 404

    assert httpx.get(f"{base_url}/forecasts/other.zarr/manifest.json", headers=bearer).status_code == 403
    assert httpx.get(f"{base_url}/forecasts/{job_id}.zarr-x/manifest.json", headers=bearer).status_code == 403
    for traversal in (f"{job_id}.zarr/%2E%2E/%2E%2E/jobs/{job_id}.json", f"{job_id}.zarr/..%2F..%2Fjobs%2F{job_id}.json"):
        response = httpx.get(f"{base_url}/forecasts/{traversal}", headers=bearer)
        assert response.status_code in (400, 403, 404) and b"job_id" not in response.content


def test_a_tampered_chunk_raises_naming_the_chunk(good_miner, tmp_path):
    base_url, _, job_id, data_dir, _ = good_miner
    chunk = _store_dir(data_dir, job_id) / "2t" / "0.0.0"
    original = chunk.read_bytes()
    try:
        chunk.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
        with pytest.raises(ManifestError, match=rf"miner {MINER_HOTKEY}, job {job_id}: chunk 2t/0\.0\.0 does not match"):
            signed_client().fetch_verified_store(base_url, MINER_HOTKEY, job_id, tmp_path / "m", time_indices=[0])
    finally:
        chunk.write_bytes(original)


def test_a_manifest_checked_against_another_miner_is_refused(good_miner, tmp_path):
    base_url, _, job_id, _, _ = good_miner
    impostor = keypair_from_uri("//impostor").ss58_address
    with pytest.raises(MinerClientError, match="HTTP 401"):  # the transport already binds the miner's hotkey
        signed_client().fetch_verified_store(base_url, impostor, job_id, tmp_path / "m", time_indices=[0])

    class SignsForTheRealMiner(FiberSession):
        """A Fiber session that addresses the serving miner whatever hotkey the client expects."""

        def handshake_steps(self, base_url, miner_hotkey):  # noqa: ANN001, ANN202
            return super().handshake_steps(base_url, MINER_HOTKEY)

        def cached_key(self, base_url, miner_hotkey):  # noqa: ANN001, ANN202
            return super().cached_key(base_url, MINER_HOTKEY)

        def request(self, key_uuid, key, miner_hotkey, data):  # noqa: ANN001, ANN202
            return super().request(key_uuid, key, MINER_HOTKEY, data)

    with pytest.raises(ManifestError, match=f"expected the miner {impostor}"):
        MinerClient(fiber=SignsForTheRealMiner(TEST_VALIDATOR_KEYPAIR)).fetch_verified_store(
            base_url, impostor, job_id, tmp_path / "m", time_indices=[0])


def test_a_store_url_off_the_registered_endpoint_is_refused(good_miner, tmp_path):
    base_url, _, job_id, _, _ = good_miner
    registered_as_localhost = base_url.replace("127.0.0.1", "localhost")  # the miner still answers 127.0.0.1 URLs
    with pytest.raises(ManifestError, match="not on the miner's registered endpoint"):
        signed_client().fetch_verified_store(registered_as_localhost, MINER_HOTKEY, job_id, tmp_path / "m", [0])


def test_a_manifest_read_after_the_freeze_window_is_refused(good_miner, tmp_path):
    base_url, _, job_id, _, _ = good_miner
    client = signed_client()
    late_start = datetime.now(timezone.utc) - timedelta(hours=3)
    with pytest.raises(ManifestError, match="freeze window"):
        client.fetch_verified_store(base_url, MINER_HOTKEY, job_id, tmp_path / "late", [0], run_start=late_start)
    fresh = client.fetch_verified_store(base_url, MINER_HOTKEY, job_id, tmp_path / "ok", [0],
                                        run_start=datetime.now(timezone.utc) - timedelta(minutes=5))
    assert fresh.files_fetched > 0


def test_a_restarted_miner_still_knows_its_completed_job(good_miner):
    _, _, job_id, data_dir, _ = good_miner
    restarted = create_app(MinerSettings(hotkey_uri=MINER_URI, profile="good", data_dir=data_dir,
                                         resolution=RESOLUTION, allowed_validators=(TEST_VALIDATOR_KEYPAIR.ss58_address,)))
    assert restarted.state.miner.jobs[job_id].status == "completed"


def test_a_slow_nan_miner_never_starts_twice_and_serves_nans(tmp_path):
    with serving_miner(tmp_path, profile="nan", hotkey_uri="//gaia-miner-nan", inference_delay_s=0.5) as (base_url, app):
        hotkey = app.state.miner.hotkey
        client = signed_client()
        first = client.initiate_fetch(base_url, hotkey, "validator-a", T0)
        second = client.initiate_fetch(base_url, hotkey, "validator-b", T0)
        assert (first.status, second.status) == ("fetch_accepted", "fetch_accepted")
        assert first.job_id == second.job_id and client.poll_job(base_url, hotkey, first.job_id).status == "received"
        assert poll_until_done(client, base_url, hotkey, first.job_id)[-1] == "completed"
        store = client.fetch_verified_store(base_url, hotkey, first.job_id, tmp_path / "mirror", [0])
        assert bool(xr.open_zarr(store.path, consolidated=True)["2t"].isel(time=0).isnull().all())


def test_an_offline_miner_times_out_with_an_error_naming_it(good_miner, tmp_path):
    offline_hotkey = keypair_from_uri("//gaia-miner-offline").ss58_address
    with serving_miner(tmp_path, profile="offline", hotkey_uri="//gaia-miner-offline") as (base_url, _):
        client = signed_client(connect_timeout=1.0, read_timeout=0.5)
        with pytest.raises(MinerClientError, match=rf"miner {offline_hotkey} at {base_url}.*timeout"):
            client.initiate_fetch(base_url, offline_hotkey, "validator-a", T0)
        live_url, _, job_id, _, _ = good_miner
        results = client.poll_many([(base_url, offline_hotkey, "job-x"), (live_url, MINER_HOTKEY, job_id)])
        assert isinstance(results[0], MinerClientError) and "timeout" in str(results[0])
        assert isinstance(results[1], PollResult) and results[1].status == "completed"


def test_a_closed_port_is_reported_as_refused():
    base_url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MinerClientError, match="connection refused"):
        signed_client(connect_timeout=1.0).poll_job(base_url, MINER_HOTKEY, "job")
