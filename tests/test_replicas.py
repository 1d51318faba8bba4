"""Replica-sync resilience: the five scenarios of the deterministic-ID requirement, with two or
three validator instances on separate PostgreSQL databases and a real miner on loopback."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy

from gaia_dagster.core.contract import Grid
from gaia_dagster.core.job_ids import DeterministicJobID, weather_job_id
from gaia_dagster.core.retry import retry_policies
from gaia_dagster.db.repository import MinerRecord, ValidatorRepository
from gaia_dagster.resources.miner import hotkey_for_uri
from gaia_dagster.resources.miner_client import MinerClient
from gaia_dagster.resources.sources import EmbeddedSources
from gaia_dagster.stages.forecast import verify_forecast
from gaia_dagster.stages.replica import check_job_id_health, find_job, reconcile_job_id_for_validator
from gaia_dagster.stages.request import request_forecast
from gaia_dagster.stages.scoring import score_day1_stage

from miner_server import running_miner  # noqa: E402

T0 = datetime(2026, 10, 20, tzinfo=timezone.utc)
RESOLUTION = 10.0
MINER_URI = "//replica-miner"
VALIDATORS = {name: hotkey_for_uri(f"//validator-{name}") for name in "ABC"}


@pytest.fixture
def databases(pg_server_url):
    """A factory of fresh PostgreSQL databases (dropped afterwards) and a database copier."""
    admin = sqlalchemy.create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    base = pg_server_url.rsplit("/", 1)[0]
    names = []

    def create() -> str:
        name = f"gaia_replica_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        names.append(name)
        return f"{base}/{name}"

    def overwrite(target_url: str, source_url: str) -> None:
        """The hourly replica sync: the target database becomes a copy of the source."""
        target, source = target_url.rsplit("/", 1)[1], source_url.rsplit("/", 1)[1]
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE "{target}" WITH (FORCE)'))
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{target}" TEMPLATE "{source}"'))

    yield create, overwrite
    with admin.connect() as conn:
        for name in names:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def validator_client(name: str = "A") -> MinerClient:
    """A validator's client, signing as that validator."""
    from gaia_dagster.core.signing import keypair_from_uri
    from gaia_dagster.resources.fiber_session import FiberSession

    return MinerClient(read_timeout=10, fiber=FiberSession(keypair_from_uri(f"//validator-{name}")))


def validator(url: str) -> ValidatorRepository:
    repo = ValidatorRepository(url)
    repo.create_schema()
    return repo


def wait_ready(client, base_url: str, hotkey: str, job_id: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 60
    while client.poll_job(base_url, hotkey, job_id).status != "completed":
        assert time.monotonic() < deadline, "miner did not complete"
        time.sleep(0.2)


def request(repo: ValidatorRepository, miner: MinerRecord, name: str):  # noqa: ANN201
    """Validator ``name`` runs the request stage with its own signed client."""
    repo.upsert_miner(miner.hotkey, miner.base_url)
    return request_forecast(repo, validator_client(name), miner, T0, VALIDATORS[name], retry_policies(0.0)["query"])


@pytest.fixture
def miner(tmp_path):
    with running_miner(tmp_path, hotkey_uri=MINER_URI, resolution=RESOLUTION) as (base_url, app):
        yield MinerRecord(hotkey_for_uri(MINER_URI), base_url, None, True, 0), app


def test_scenario_1_and_2_same_id_everywhere_and_the_miner_reuses_the_job(databases, miner):
    create, _ = databases
    record, app = miner
    a, b = validator(create()), validator(create())
    client = validator_client()
    first = request(a, record, "A")
    wait_ready(client, record.base_url, record.hotkey, first.response.job_id)
    second = request(b, record, "B")
    assert first.outcome == "requested" and second.outcome == "fast_path"
    assert first.response.job_id == second.response.job_id == weather_job_id(T0, record.hotkey)
    assert len(app.state.miner.jobs) == 1  # no duplicate work on the miner


def test_scenario_3_database_overwrite_then_every_job_is_found_and_reconciled(databases, miner, tmp_path):
    create, overwrite = databases
    record, _ = miner
    url_a, url_b = create(), create()
    a, b = validator(url_a), validator(url_b)
    client = validator_client()
    job = request(a, record, "A").response
    wait_ready(client, record.base_url, record.hotkey, job.job_id)
    # B's rows predate the deterministic upgrade: a random ID for the same (T0, miner).
    run, _ = b.get_or_create_run(T0)
    legacy = str(uuid.uuid4())
    b.create_response(run.id, record.hotkey, VALIDATORS["B"], legacy, record.base_url)
    a.engine.dispose()
    b.engine.dispose()
    overwrite(url_a, url_b)  # B's database copied over A's
    a = ValidatorRepository(url_a)
    assert check_job_id_health(a).stats["mismatches_24h"] == 1
    lookup = find_job(a, job.job_id, record.hotkey, T0, VALIDATORS["A"])
    assert lookup.strategy == "any_validator" and lookup.response.job_id == legacy
    assert find_job(a, job.job_id, record.hotkey, datetime(2026, 10, 20, 6, tzinfo=timezone.utc)).strategy != "exact"
    assert reconcile_job_id_for_validator(a, legacy, record.hotkey, T0, VALIDATORS["A"]) == job.job_id
    health = check_job_id_health(a)
    assert health.stats["mismatches_24h"] == 0 and health.stats["sync_issues_24h"] >= 1 and health.healthy
    row = a.response_by_job_id(job.job_id)
    a.transition_response(row.id, "created", "fetch_initiated")
    a.transition_response(row.id, "fetch_initiated", "inference_running")
    verified = verify_forecast(a, client, a.response_by_id(row.id), tmp_path / "cache", Grid(RESOLUTION))
    assert verified.outcome == "verified"


def test_scenario_4_the_miner_finds_a_job_asked_for_by_its_readable_key(miner):
    record, _ = miner
    client = validator_client()
    answer = client.initiate_fetch(record.base_url, record.hotkey, VALIDATORS["A"], T0)
    wait_ready(client, record.base_url, record.hotkey, answer.job_id)
    key = DeterministicJobID.weather_job_key(T0, record.hotkey)
    kerchunk = client.kerchunk(record.base_url, record.hotkey, key)
    assert kerchunk.status == "completed" and answer.job_id in kerchunk.zarr_store_url


def test_scenario_5_three_validators_all_score_the_miner(databases, miner, tmp_path):
    create, _ = databases
    record, _ = miner
    client = validator_client()
    sources = EmbeddedSources(resolution=RESOLUTION, cache_dir=str(tmp_path / "cache"))
    scores = {}
    for name in "ABC":
        client = validator_client(name)
        repo = validator(create())
        row = request(repo, record, name).response
        wait_ready(client, record.base_url, record.hotkey, row.job_id)
        row = repo.response_by_id(row.id)
        verify_forecast(repo, client, row, tmp_path / name, Grid(RESOLUTION))
        result = score_day1_stage(repo, client, sources, repo.response_by_id(row.id))
        scores[name] = result.score
        assert repo.response_by_id(row.id).status == "day1_scored"
    assert len(set(round(s, 12) for s in scores.values())) == 1 and scores["A"] > 0.3
