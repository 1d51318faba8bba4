"""``chain_weights`` under the deployed profile and on the chain's cadence (weights_cadence_sensor).

The chain is the bittensor SDK over its in-memory seam (tests/test_chain.py); the deployed vector
is checked against ``gaia-dagster weights`` run on an input written out by hand from Gaia's rules
for per-run score rows (so the pipeline's row building is checked, not assumed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("bittensor")

from dagster import DagsterInstance, build_sensor_context, materialize  # noqa: E402
from test_chain import (  # noqa: E402
    STATES, VALIDATOR_URI, InMemoryChain, SubnetState, keyed, neuron, weights_metadata,
)

from gaia_dagster.assets.chain_weights import SLOT_TAG, chain_weights  # noqa: E402
from gaia_dagster.core.states import ResponseStatus, WeightStatus, response_path  # noqa: E402
from gaia_dagster.core.weights_cadence import open_slot  # noqa: E402
from gaia_dagster.core.weights_deployed import DEFAULT_BURN_HOTKEY  # noqa: E402
from gaia_dagster.db.weights import weight_records  # noqa: E402
from gaia_dagster.definitions import build_definitions  # noqa: E402
from gaia_dagster.resources.miner import MinerAccess  # noqa: E402
from gaia_dagster.resources.registry import MinerRegistry  # noqa: E402
from gaia_dagster.resources.sources import EmbeddedSources  # noqa: E402
from gaia_dagster.resources.validator_db import ValidatorDB  # noqa: E402

TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
RUN_1, RUN_2 = TODAY - timedelta(days=5), TODAY - timedelta(days=3)


def scored(repo, run_id: int, hotkey: str, status: str, day1: float | None, era5: float | None) -> None:  # noqa: ANN001
    """A job of ``hotkey`` in ``run_id``, walked to ``status``, with these whole scores."""
    repo.upsert_miner(hotkey, f"http://10.1.0.{len(hotkey)}:8091")
    response, _ = repo.create_response(run_id, hotkey, "validator", f"job-{run_id}-{hotkey}", "http://x")
    current = ResponseStatus.CREATED.value
    if status == ResponseStatus.FAILED.value:
        steps = [status]
    elif status == ResponseStatus.ERA5_PARTIAL.value:
        steps = [*response_path(current, ResponseStatus.ERA5_SCORING.value), status]
    else:
        steps = response_path(current, status)
    for step in steps:
        repo.transition_response(response.id, current, step)
        current = step
    for kind, value in (("day1", day1), ("era5", era5)):
        if value is not None:
            repo.record_scores(response.id, kind, [{"lead_hours": 0, "variable": "*", "level": 0, "score": value}])


def two_days(tmp_path) -> ValidatorDB:  # noqa: ANN001
    db = ValidatorDB(url=f"sqlite:///{tmp_path / 'validator.db'}")
    repo = db.repo
    run_1, _ = repo.get_or_create_run(RUN_1)
    run_2, _ = repo.get_or_create_run(RUN_2)
    scored(repo, run_1.id, "miner-a", ResponseStatus.ERA5_SCORED.value, 0.5, 0.8)
    scored(repo, run_1.id, "miner-b", ResponseStatus.DAY1_SCORED.value, 0.3, None)
    scored(repo, run_1.id, "miner-c", ResponseStatus.FAILED.value, 0.05, None)
    scored(repo, run_2.id, "miner-a", ResponseStatus.ERA5_PARTIAL.value, 0.5, 0.6)
    scored(repo, run_2.id, "miner-b", ResponseStatus.DAY1_SCORED.value, 0.3, None)
    return db


SUBNET = [neuron("validator", "10.0.0.1", 9000, 50_000, True, last_update=900), neuron("miner-b", "10.0.0.3"),
          neuron("miner-a", "10.0.0.2"), neuron("miner-c", "10.0.0.4"), neuron(DEFAULT_BURN_HOTKEY, "10.0.0.9"),
          neuron("idle", "0.0.0.0", 0)]


def by_hand_input() -> dict:
    """What Gaia's validator reads for the two days, written from Gaia's rules for a run's row:
    run 1: miner-a overall 0.95 x 0.8 + 0.05 = 0.81 plus the 0.05 bonus (sole best >= 0.7) = 0.86,
    miner-b day-1 only and passed (0.3 >= 0.1): 0.05, miner-c day-1 failed (0.05 < 0.1): 0;
    run 2: miner-a (ERA5 so far) 0.95 x 0.6 + 0.05 = 0.62, no bonus; miner-b 0.05."""
    def row(run_id: int, t0: datetime, entries: dict[int, float]) -> dict:
        return {"task_id": f"weather_scores_{run_id}_{t0:%Y%m%dT%H%MZ}", "created_at": t0.isoformat(),
                "score": [entries.get(uid, 0.0) for uid in range(256)]}

    nodes = [{"uid": uid, "hotkey": n["hotkey"], "coldkey": "cold", "ip": n["ip"], "port": n["port"],
              "stake": n["stake"], "validator_permit": n["permit"], "last_update": n["last_update"]}
             for uid, n in enumerate(SUBNET)]
    return {"now": datetime.now(timezone.utc).isoformat(), "block": 1000, "nodes": nodes,
            "rows": [row(1, RUN_1, {2: 0.95 * 0.8 + 0.05 + 0.05, 1: 0.05}), row(2, RUN_2, {2: 0.95 * 0.6 + 0.05, 1: 0.05})]}


def cli_weights(document: dict, tmp_path) -> dict:  # noqa: ANN001
    path = tmp_path / "input.json"
    path.write_text(json.dumps(document))
    done = subprocess.run([sys.executable, "-m", "gaia_dagster.cli", "weights", "--input", str(path), "--json"],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_deployed_dry_run_records_the_vector_gaias_path_gives(tmp_path):
    state = STATES["ws://deployed"] = SubnetState([dict(n) for n in SUBNET], version_key=7)
    meta = weights_metadata(tmp_path, two_days(tmp_path), InMemoryChain(network="ws://deployed"),
                            MinerRegistry(source="chain"), profile="deployed")
    expected = cli_weights(by_hand_input(), tmp_path)
    assert meta["profile"].value == "deployed" and meta["status"].value == WeightStatus.RECORDED.value
    assert meta["uids"].value == expected["uids_u16"] and meta["u16_values"].value == expected["u16"]
    assert max(abs(a - b) for a, b in zip(meta["vector"].value, expected["weights"])) <= 1e-12
    # Gaia's version key, not the subnet's 7; the burn UID holds the most, the active validator nothing,
    # the idle UID (no axon: IP 0.0.0.0) is registered but scored nothing
    assert meta["version_key"].value == 2186 and meta["call"].value["version_key"] == 2186
    assert meta["u16_values"].value[meta["uids"].value.index(4)] == 65535
    assert 0 not in meta["uids"].value and meta["uids"].value == [1, 2, 4]
    assert state.submitted == []


def test_deployed_rows_do_not_follow_a_hotkey_that_left(tmp_path):
    """A UID taken by a new hotkey does not inherit the old hotkey's scores."""
    subnet = [dict(n) for n in SUBNET]
    subnet[2] = neuron("newcomer", "10.0.0.2")      # miner-a's UID 2, now someone else's
    STATES["ws://left"] = SubnetState(subnet)
    meta = weights_metadata(tmp_path, two_days(tmp_path), InMemoryChain(network="ws://left"),
                            MinerRegistry(source="chain"), profile="deployed")
    assert 2 not in meta["uids"].value and 1 in meta["uids"].value


def sensor_tick(tmp_path, chain, db: ValidatorDB):  # noqa: ANN001, ANN201
    defs = build_definitions({"validator_db": db, "miner_registry": MinerRegistry(source="chain"), "chain": chain,
                              "miner_access": MinerAccess(validator_hotkey_uri=VALIDATOR_URI),
                              "sources": EmbeddedSources(resolution=10.0, cache_dir=str(tmp_path / "cache"))})
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, definitions=defs, sensor_name="weights_cadence_sensor",
                                       resources=defs.resources)
        result = defs.resolve_sensor_def("weights_cadence_sensor").evaluate_tick(context)
    return result.run_requests or [], result.skip_message


@pytest.mark.parametrize("last_update,rate_limit,due", [(700, 0, True), (800, 0, False), (700, 400, False),
                                                        (500, 400, True)])
def test_the_sensor_opens_a_slot_every_250_blocks_or_the_rate_limit(tmp_path, last_update, rate_limit, due):
    me = keyed(VALIDATOR_URI)
    network = f"ws://cadence-{last_update}-{rate_limit}"
    state = STATES[network] = SubnetState([neuron(me, "10.0.0.1", 9000, 50_000, True, last_update=last_update),
                                           neuron("miner-a", "10.0.0.2")])
    state.storage["WeightsSetRateLimit"] = rate_limit
    requests, skip = sensor_tick(tmp_path, InMemoryChain(network=network, weights_mode="submit"),
                                 ValidatorDB(url=f"sqlite:///{tmp_path / 'v.db'}"))
    if due:
        assert [r.run_key for r in requests] == [f"weights|after-{last_update}|slot-1"]
        assert requests[0].tags[SLOT_TAG] == requests[0].run_key
    else:
        assert requests == [] and f"next weights at block {last_update + max(250, rate_limit)}" in skip


def test_dry_run_cadence_counts_from_its_own_last_record(tmp_path):
    STATES["ws://dry-cadence"] = SubnetState([dict(n) for n in SUBNET])
    chain, db = InMemoryChain(network="ws://dry-cadence"), two_days(tmp_path)
    requests, _ = sensor_tick(tmp_path, chain, db)
    assert [r.run_key for r in requests] == ["weights|after--1|slot-4"]       # nothing recorded yet: at once
    weights_metadata(tmp_path, db, chain, MinerRegistry(source="chain"), profile="deployed",
                     tags={SLOT_TAG: requests[0].run_key})
    assert sensor_tick(tmp_path, chain, db)[0] == []                        # recorded at block 1000
    STATES["ws://dry-cadence"].block = 1250
    assert [r.run_key for r in sensor_tick(tmp_path, chain, db)[0]] == ["weights|after-1000|slot-1"]


def test_a_slot_with_nothing_to_set_is_recorded_and_the_next_opens_an_interval_later(tmp_path):
    STATES["ws://empty"] = SubnetState([dict(n) for n in SUBNET])
    chain, db = InMemoryChain(network="ws://empty"), ValidatorDB(url=f"sqlite:///{tmp_path / 'empty.db'}")
    meta = weights_metadata(tmp_path, db, chain, MinerRegistry(source="chain"), profile="sound",
                            tags={SLOT_TAG: "weights|after--1|slot-4"})
    assert meta["status"].value == WeightStatus.NOTHING.value and "no leaderboard" in meta["reason"].value
    assert sensor_tick(tmp_path, chain, db)[0] == []
    STATES["ws://empty"].block = 1250
    assert [r.run_key for r in sensor_tick(tmp_path, chain, db)[0]] == ["weights|after-1000|slot-1"]


def test_a_refused_submission_fails_visibly_keeps_the_vector_and_the_next_slot_retries(tmp_path):
    me = keyed(VALIDATOR_URI)
    subnet = [dict(n) for n in SUBNET] + [neuron(me, "10.0.0.7", 9000, 60_000, True, last_update=700)]
    state = STATES["ws://refused"] = SubnetState(subnet)
    state.refuse = "SettingWeightsTooFast"
    chain, db = InMemoryChain(network="ws://refused", weights_mode="submit"), two_days(tmp_path)
    requests, _ = sensor_tick(tmp_path, chain, db)
    assert [r.run_key for r in requests] == ["weights|after-700|slot-1"]
    result = materialize([chain_weights], tags={SLOT_TAG: requests[0].run_key}, raise_on_error=False, resources={
        "validator_db": db, "miner_registry": MinerRegistry(source="chain"), "chain": chain,
        "miner_access": MinerAccess(validator_hotkey_uri=VALIDATOR_URI),
        "sources": EmbeddedSources(scoring_profile="deployed", cache_dir=str(tmp_path / "cache"))})
    assert not result.success and len(state.submitted) == 1
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "SettingWeightsTooFast" in failure.event_specific_data.error.message
    assert "next slot" in failure.event_specific_data.error.message
    [record] = weight_records(db.repo)
    assert record.status == WeightStatus.FAILED.value and record.slot_key == "weights|after-700|slot-1"
    assert record.vector is not None and abs(sum(record.vector) - 1.0) < 1e-9
    assert record.call["dests"] and "SettingWeightsTooFast" in record.error
    # the same slot is not tried twice; 250 blocks on, the next slot is
    assert sensor_tick(tmp_path, chain, db)[0][0].run_key == "weights|after-700|slot-1"   # deduplicated by run key
    state.block = 1200
    assert sensor_tick(tmp_path, chain, db)[0][0].run_key == "weights|after-700|slot-2"


def test_slots_are_counted_from_the_last_weights():
    assert open_slot(1000, None, 250).key == "weights|after--1|slot-4"
    assert open_slot(1250, None, 250).key == "weights|after--1|slot-5"    # a first attempt that failed
    assert open_slot(949, 700, 250) is None
    assert open_slot(950, 700, 250).key == "weights|after-700|slot-1"
    assert open_slot(1449, 700, 250).index == 2 and open_slot(1449, 700, 250).block == 1200


def test_weights_from_db_is_what_chain_weights_records_and_its_input_reproduces_it(tmp_path):
    """No chain (the embedded default): ``gaia-dagster weights --from-db`` reads the validator's DB and
    registry file through the code location's resources, writes its input, and gives the vector the
    ``chain_weights`` dry run records; that input through ``--input`` gives it again."""
    import os

    from gaia_dagster.core.registry import RegistryEntry
    from gaia_dagster.resources.chain import SubnetChain
    from gaia_dagster.resources.registry import write_registry

    db = two_days(tmp_path)
    registry = tmp_path / "miners.json"
    write_registry(registry, [RegistryEntry("miner-a", "http://10.1.0.7:8091", 3),
                              RegistryEntry("miner-b", "http://10.1.0.8:8091", 5),
                              RegistryEntry("miner-c", "http://10.1.0.9:8091", 6)])
    meta = weights_metadata(tmp_path, db, SubnetChain(), MinerRegistry(path=str(registry)), profile="deployed")
    env = {**os.environ, "GAIA_DB_URL": db.url, "GAIA_REGISTRY": str(registry), "DAGSTER_HOME": str(tmp_path),
           "DAGSTER_DISABLE_TELEMETRY": "1"}
    dumped = tmp_path / "dumped.json"
    done = subprocess.run([sys.executable, "-m", "gaia_dagster.cli", "weights", "--from-db", "--dump-input",
                           str(dumped), "--json"], capture_output=True, text=True, timeout=120, env=env, check=True)
    from_db = json.loads(done.stdout.strip().splitlines()[-1])
    assert from_db["uids_u16"] == meta["uids"].value == [3, 5]   # miner-c's day-1 failed: nothing
    assert from_db["u16"] == meta["u16_values"].value and from_db["u16"][0] == 65535
    assert cli_weights(json.loads(dumped.read_text()), tmp_path) == from_db
