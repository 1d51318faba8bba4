"""The chain adapter (resources/chain.py), the chain-backed registry and ``chain_weights``.

What runs for real here: the bittensor SDK's client, its metagraph read and its ``SetWeights``
intent (preflight, conforming, call composition, executor) over the SDK's own chain-access seam
(``bittensor.Client(substrate=...)``, documented for in-memory chains), holding the subnet state a
node would return decoded; and the SDK's websocket JSON-RPC transport against a loopback server.
What only a live chain proves: SCALE decoding of subtensor's runtime metadata and of the
metagraph runtime API, extrinsic signing and inclusion (a loopback node would have to serve real
V15 metadata, which is not available offline).
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime, timezone
from ipaddress import IPv4Address
from typing import Any

import pytest

bittensor = pytest.importorskip("bittensor")

from bittensor import ExtrinsicResult  # noqa: E402
from dagster import DagsterInstance, materialize  # noqa: E402

from gaia_dagster.assets.chain_weights import chain_weights  # noqa: E402
from gaia_dagster.assets.partitions import miner_partitions  # noqa: E402
from gaia_dagster.core.chain_weights import U16_MAX  # noqa: E402
from gaia_dagster.core.registry import ChainNeuron, registry_from_metagraph  # noqa: E402
from gaia_dagster.resources.chain import ChainError, SubnetChain  # noqa: E402
from gaia_dagster.resources.miner import MinerAccess  # noqa: E402
from gaia_dagster.resources.registry import MinerRegistry, current_uids, registry_entries  # noqa: E402
from gaia_dagster.resources.validator_db import ValidatorDB  # noqa: E402

NETUID = 57
VALIDATOR_URI = "//gaia-chain-test-validator"


class SubnetState:
    """Subnet 57 as a node answers it, decoded: the metagraph runtime API and the storage that
    ``SetWeights`` and the weight rules read. ``submitted`` records every call sent."""

    def __init__(self, neurons: list[dict], *, max_weight_limit: int = U16_MAX, commit_reveal: bool = False,
                 version_key: int = 7, validator_hotkey: str = ""):
        self.neurons = neurons
        self.storage = {"MaxWeightsLimit": max_weight_limit, "MinAllowedWeights": 1,
                        "CommitRevealWeightsEnabled": commit_reveal, "WeightsVersionKey": version_key,
                        "WeightsSetRateLimit": 0, "SubnetEpochConsensus": "Yuma", "Tempo": 360,
                        "RevealPeriodEpochs": 1, "LastEpochBlock": 990, "PendingEpochAt": 0,
                        "SubnetEpochIndex": 3, "BlocksSinceLastStep": 10}
        self.validator_hotkey = validator_hotkey
        self.submitted: list[Any] = []
        self.block = 1000
        self.refuse = ""  # when set, every submission fails on chain with this message

    def graph(self) -> dict:
        column = lambda key: [n[key] for n in self.neurons]  # noqa: E731
        return {"block": self.block, "tempo": 360, "last_step": 990, "blocks_since_last_step": 10,
                "owner_hotkey": "owner", "owner_coldkey": "owner", "network_registered_at": 1, "netuid": NETUID,
                "hotkeys": column("hotkey"), "coldkeys": ["cold"] * len(self.neurons),
                "axons": [{"ip": int(IPv4Address(n["ip"])), "port": n["port"], "ip_type": 4} for n in self.neurons],
                "validator_permit": column("permit"), "last_update": [n.get("last_update", 0) for n in self.neurons], "total_stake": [int(n["stake"] * 1e9) for n in self.neurons],
                "active": [True] * len(self.neurons)}


class InMemorySubstrate:
    """The SDK's ``Substrate`` contract over a ``SubnetState`` (the seam ``bittensor.Client`` takes)."""

    def __init__(self, state: SubnetState):
        self.state = state

    def balance(self, rao: int, netuid: int = 0):  # noqa: ANN201
        return bittensor.Balance.from_rao(rao, netuid)

    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def block_hash(self, block: int | None = None) -> str: return f"0x{(block or 1000):064x}"
    async def block_number(self) -> int: return self.state.block
    async def finalized_block_number(self) -> int: return 1000
    async def block_time(self) -> float: return 12.0
    async def spec_version(self) -> int: return 400

    async def query(self, module: str, storage_function: str, params: list | None = None, block_hash: str | None = None):
        if storage_function == "Uids":
            hotkeys = [n["hotkey"] for n in self.state.neurons]
            return hotkeys.index(params[1]) if params[1] in hotkeys else None
        if storage_function == "LastUpdate":
            return [n.get("last_update", 0) for n in self.state.neurons]
        if storage_function == "ValidatorPermit":
            return [n["permit"] for n in self.state.neurons]
        return self.state.storage.get(storage_function)

    async def query_map(self, module, storage_function, params=None, block_hash=None):  # noqa: ANN001, ANN201
        return []

    async def runtime_call(self, api: str, method: str, params: list, block_hash: str | None = None):
        assert (api, method, params) == ("SubnetInfoRuntimeApi", "get_metagraph", [NETUID])
        return self.state.graph()

    async def compose(self, call):  # noqa: ANN001, ANN201
        return call

    async def estimate_fee(self, call, keypair):  # noqa: ANN001, ANN201
        return bittensor.Balance.from_rao(1000)

    async def submit(self, call, keypair, **kwargs):  # noqa: ANN001, ANN201
        self.state.submitted.append((call, keypair.ss58_address))
        if self.state.refuse:
            return ExtrinsicResult(success=False, message=self.state.refuse)
        return ExtrinsicResult(success=True, message="included", block_hash="0x" + "ab" * 32, extrinsic_id="1001-2")


class InMemoryChain(SubnetChain):
    """The adapter, unchanged, with the SDK client built over an in-memory subnet."""

    def client(self) -> Any:
        return bittensor.Client("ws://127.0.0.1:1", substrate=InMemorySubstrate(STATES[self.network]))


STATES: dict[str, SubnetState] = {}


def neuron(hotkey: str, ip: str = "127.0.0.1", port: int = 8091, stake: float = 0.0, permit: bool = False,
           last_update: int = 0) -> dict:
    return {"hotkey": hotkey, "ip": ip, "port": port, "stake": stake, "permit": permit, "last_update": last_update}


def keyed(uri: str) -> str:
    from bittensor_wallet import Keypair

    return Keypair.create_from_uri(uri).ss58_address


# --- the metagraph as the miner registry ------------------------------------------------------------

def test_metagraph_read_through_the_sdk_gives_the_miners_by_uid():
    me = keyed(VALIDATOR_URI)
    STATES["ws://meta"] = SubnetState([neuron("validator-big", "10.0.0.1", 9000, stake=50_000, permit=True),
                                       neuron("miner-a", "10.0.0.2", 8091), neuron("idle", "0.0.0.0", 0),
                                       neuron(me, "10.0.0.4", 8091, stake=10, permit=True),
                                       neuron("miner-b", "10.0.0.5", 8092, stake=5, permit=True)])
    chain = InMemoryChain(network="ws://meta")
    neurons = chain.neurons()
    assert [(n.uid, n.hotkey, n.axon, n.validator_permit) for n in neurons][:3] == [
        (0, "validator-big", "10.0.0.1:9000", True), (1, "miner-a", "10.0.0.2:8091", False), (2, "idle", None, False)]
    assert neurons[0].stake == pytest.approx(50_000)
    entries = registry_entries(MinerRegistry(source="chain"), chain, own_hotkey=me)
    # the validator (permit and 50k stake), the idle UID and our own hotkey are not miners; a small
    # staker holding a permit below the threshold still is
    assert [(e.uid, e.hotkey, e.base_url) for e in entries] == [
        (1, "miner-a", "http://10.0.0.2:8091"), (4, "miner-b", "http://10.0.0.5:8092")]
    # for weights, every UID counts, serving or not
    assert current_uids(MinerRegistry(source="chain"), chain)["idle"] == 2


def test_registry_source_setting_is_checked():
    with pytest.raises(ValueError, match="GAIA_REGISTRY_SOURCE"):
        MinerRegistry(source="metagraph").uses_chain()
    with pytest.raises(ChainError, match="no chain configured"):
        SubnetChain().neurons()


def test_a_uid_taken_by_a_new_hotkey_is_a_new_miner_and_the_old_keeps_its_history(tmp_path):
    """Miners are keyed by hotkey (DB rows and the ``miners`` partitions): UID 1 passing from
    old-hotkey to new-hotkey adds a miner, and never rewrites or removes the old one."""
    from dagster import build_sensor_context

    from gaia_dagster.definitions import build_definitions
    from gaia_dagster.resources.sources import EmbeddedSources

    STATES["ws://reuse"] = SubnetState([neuron("validator", "10.0.0.1", 9000, 50_000, True),
                                        neuron("old-hotkey", "10.0.0.2", 8091)])
    db = ValidatorDB(url=f"sqlite:///{tmp_path / 'validator.db'}")
    defs = build_definitions({"validator_db": db, "miner_registry": MinerRegistry(source="chain"),
                              "chain": InMemoryChain(network="ws://reuse"),
                              "miner_access": MinerAccess(validator_hotkey_uri=VALIDATOR_URI),
                              "sources": EmbeddedSources(resolution=10.0, cache_dir=str(tmp_path / "cache"))})
    with DagsterInstance.ephemeral() as instance:
        def tick() -> None:
            context = build_sensor_context(instance=instance, definitions=defs, sensor_name="miner_registry_sensor",
                                           resources=defs.resources)
            defs.resolve_sensor_def("miner_registry_sensor").evaluate_tick(context)

        tick()
        repo = db.repo
        assert [(m.hotkey, m.uid) for m in repo.miners()] == [("old-hotkey", 1)]
        STATES["ws://reuse"].neurons[1] = neuron("new-hotkey", "10.0.0.9", 8091)  # deregistered, UID reused
        tick()
        assert sorted(instance.get_dynamic_partitions(miner_partitions.name)) == ["new-hotkey", "old-hotkey"]
        miners = {m.hotkey: m for m in repo.miners()}
        assert miners["new-hotkey"].uid == 1 and miners["new-hotkey"].base_url == "http://10.0.0.9:8091"
        assert miners["old-hotkey"].base_url == "http://10.0.0.2:8091"  # its row, as it was
        # ...but it has left the metagraph: kept, unlisted, and the next run does not select it.
        assert miners["old-hotkey"].listed is False and miners["new-hotkey"].listed is True
        from gaia_dagster.sensors.orchestrate import run_selection

        run, _ = repo.get_or_create_run(datetime(2026, 10, 20, tzinfo=timezone.utc))
        partitioned = set(instance.get_dynamic_partitions(miner_partitions.name))
        assert run_selection(repo, repo.run_by_id(run.id), partitioned) == ["new-hotkey"]
        STATES["ws://reuse"].neurons.append(neuron("old-hotkey", "10.0.0.2", 8091))   # back under UID 2
        tick()
        assert {m.hotkey: m.listed for m in repo.miners()} == {"new-hotkey": True, "old-hotkey": True}
    # and its weight never reaches UID 1, only the UID it holds now (core/chain_weights)
    assert current_uids(MinerRegistry(source="chain"), InMemoryChain(network="ws://reuse")) == {
        "validator": 0, "new-hotkey": 1, "old-hotkey": 2}


# --- weights --------------------------------------------------------------------------------------

def seeded_day(tmp_path, scores: dict[str, float]) -> ValidatorDB:
    """A validator DB with one run on 2026-10-20 whose miners have these overall scores."""
    db = ValidatorDB(url=f"sqlite:///{tmp_path / 'validator.db'}")
    repo = db.repo
    run, _ = repo.get_or_create_run(datetime(2026, 10, 20, tzinfo=timezone.utc))
    for i, (hotkey, score) in enumerate(scores.items()):
        repo.upsert_miner(hotkey, f"http://127.0.0.1:{9000 + i}")
        response, _ = repo.create_response(run.id, hotkey, "validator", f"job-{i}", f"http://127.0.0.1:{9000 + i}")
        repo.record_scores(response.id, "overall", [{"lead_hours": 0, "variable": "*", "level": 0, "score": score}])
    return db


def weights_metadata(tmp_path, db: ValidatorDB, chain: SubnetChain, registry: MinerRegistry,  # noqa: ANN201
                     profile: str = "sound", tags: dict | None = None):
    from gaia_dagster.resources.sources import EmbeddedSources

    result = materialize([chain_weights], tags=tags, resources={
        "validator_db": db, "miner_registry": registry, "chain": chain,
        "miner_access": MinerAccess(validator_hotkey_uri=VALIDATOR_URI),
        "sources": EmbeddedSources(scoring_profile=profile, cache_dir=str(tmp_path / "cache"))})
    assert result.success
    return result.asset_materializations_for_node("chain_weights")[0].metadata


def test_dry_run_records_by_uid_what_it_would_set_and_sends_nothing(tmp_path):
    db = seeded_day(tmp_path, {"miner-a": 0.8, "miner-b": 0.4, "gone": 0.6, "failed": 0.0})
    state = STATES["ws://dry"] = SubnetState(
        [neuron("validator", "10.0.0.1", 9000, 50_000, True), neuron("miner-b", "10.0.0.3"),
         neuron("miner-a", "10.0.0.2"), neuron("failed", "10.0.0.4")], max_weight_limit=40000, version_key=7)
    meta = weights_metadata(tmp_path, db, InMemoryChain(network="ws://dry"), MinerRegistry(source="chain"))
    assert meta["mode"].value == "dry-run" and meta["status"].value == "recorded" and state.submitted == []
    assert meta["netuid"].value == NETUID and meta["version_key"].value == 7 and meta["profile"].value == "sound"
    rows = [{k: r.data[k] for k in ("uid", "hotkey", "u16")} for r in meta["weights"].value.records]
    # miner-a 0.8 + 0.05 top bonus, miner-b 0.4: a's share 0.68 is over the limit L = 40000/65535, so a
    # is cut to c = L * 0.4 / (1 - L) and b / a = 0.4 / c = 25535 / 40000. "gone" holds no UID (left
    # out), "failed" scored 0 (dropped).
    b_value = round(U16_MAX * 25535 / 40000)
    assert rows == [{"uid": 1, "hotkey": "miner-b", "u16": b_value}, {"uid": 2, "hotkey": "miner-a", "u16": U16_MAX}]
    assert meta["uids"].value == [1, 2] and meta["u16_values"].value == [b_value, U16_MAX]
    assert U16_MAX / (U16_MAX + b_value) <= 40000 / U16_MAX
    assert meta["without_uid"].value == ["gone"] and meta["reason"].value == ""
    assert meta["call"].value == {"intent": "SetWeights", "path": "set_weights", "netuid": NETUID, "dests": [1, 2],
                                  "weights": [b_value, U16_MAX], "version_key": 7}


def test_demo_default_runs_offline_from_the_registry_file(tmp_path):
    """No chain configured (the embedded default): UIDs from the registry file, the chain's
    default rules, dry-run."""
    from gaia_dagster.core.registry import RegistryEntry
    from gaia_dagster.resources.registry import write_registry

    db = seeded_day(tmp_path, {"miner-a": 0.9, "miner-b": 0.3})
    write_registry(tmp_path / "miners.json", [RegistryEntry("miner-a", "http://127.0.0.1:9000", 3),
                                              RegistryEntry("miner-b", "http://127.0.0.1:9001", 8)])
    meta = weights_metadata(tmp_path, db, SubnetChain(), MinerRegistry(path=str(tmp_path / "miners.json")))
    assert meta["mode"].value == "dry-run" and meta["version_key"].value == 0
    # miner-a 0.9 + 0.05 top bonus against miner-b 0.3, no limit: proportional
    assert meta["uids"].value == [3, 8] and meta["u16_values"].value == [U16_MAX, round(U16_MAX * 0.3 / 0.95)]


@pytest.mark.parametrize("commit_reveal", [False, True])
def test_submit_sends_exactly_the_recorded_values_through_set_weights(tmp_path, commit_reveal):
    """``GAIA_WEIGHTS=submit``: the SDK's SetWeights runs for real (preflight of the validator's
    registration, conforming, call composition) and the call carries the recorded u16 values, or,
    on a commit-reveal subnet, a timelocked commit."""
    me = keyed(VALIDATOR_URI)
    db = seeded_day(tmp_path, {"miner-a": 0.8, "miner-b": 0.4, "miner-c": 0.1})
    state = STATES[f"ws://submit-{commit_reveal}"] = SubnetState(
        [neuron(me, "10.0.0.1", 9000, 50_000, True), neuron("miner-a", "10.0.0.2"), neuron("miner-b", "10.0.0.3"),
         neuron("miner-c", "10.0.0.4")], max_weight_limit=30000, commit_reveal=commit_reveal, version_key=11)
    chain = InMemoryChain(network=f"ws://submit-{commit_reveal}", weights_mode="submit")
    meta = weights_metadata(tmp_path, db, chain, MinerRegistry(source="chain"))
    assert meta["mode"].value == "submit" and meta["status"].value == "submitted" and len(state.submitted) == 1
    call, signer = state.submitted[0]
    assert signer == me
    module, function, params = call.module, call.function, call.params
    assert module == "SubtensorModule"
    if commit_reveal:
        assert function == "commit_timelocked_mechanism_weights" and params["netuid"] == NETUID
        assert meta["call"].value["path"].startswith("commit-reveal")
    else:
        assert function == "set_mechanism_weights"
        assert (params["dests"], params["weights"], params["version_key"]) == (
            meta["uids"].value, meta["u16_values"].value, 11)
        assert max(params["weights"]) * U16_MAX <= 30000 * sum(params["weights"])  # within the limit
    assert meta["submission"].value["extrinsic_id"] == "1001-2"


# --- the SDK's transport against a loopback node -----------------------------------------------------

class LoopbackNode:
    """A websocket JSON-RPC server on loopback that answers the chain-identity calls and refuses
    runtime metadata (it has none to give), recording every method asked."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, ws) -> None:  # noqa: ANN001
        async for message in ws:
            frames = json.loads(message)
            answers = [self._answer(f) for f in (frames if isinstance(frames, list) else [frames])]
            await ws.send(json.dumps(answers if isinstance(frames, list) else answers[0]))

    def _answer(self, frame: dict) -> dict:
        method = frame["method"]
        self.methods.append(method)
        results = {"chain_getBlockHash": "0x" + "11" * 32, "chain_getHead": "0x" + "22" * 32,
                   "chain_getFinalizedHead": "0x" + "22" * 32,
                   "chain_getHeader": {"number": "0x3e8", "parentHash": "0x" + "11" * 32},
                   "state_getRuntimeVersion": {"specVersion": 400, "transactionVersion": 1, "specName": "node-subtensor"}}
        if method in results:
            return {"jsonrpc": "2.0", "id": frame["id"], "result": results[method]}
        return {"jsonrpc": "2.0", "id": frame["id"], "error": {"code": -32000, "message": f"loopback node: no {method}"}}

    def _run(self) -> None:
        import websockets

        async def main() -> None:
            self._stop = asyncio.get_running_loop().create_future()
            async with websockets.serve(self._handle, "127.0.0.1", 0) as server:
                self.port = server.sockets[0].getsockname()[1]
                self._ready.set()
                await self._stop

        self._loop.run_until_complete(main())

    def __enter__(self) -> "LoopbackNode":
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(5)


def test_the_adapter_dials_the_configured_endpoint_and_names_it_when_the_node_fails():
    with LoopbackNode() as node:
        endpoint = f"ws://127.0.0.1:{node.port}"
        with pytest.raises(ChainError) as failure:
            SubnetChain(network=endpoint).neurons()
    message = str(failure.value)
    assert "reading the metagraph for netuid 57 on " + endpoint in message
    # the SDK spoke JSON-RPC to our node (runtime version, genesis hash), then asked for the runtime
    # metadata (state_call Metadata_metadata_at_version), which only a real node can give
    assert node.methods[:2] == ["state_getRuntimeVersion", "chain_getBlockHash"], node.methods
    assert node.methods[-1] == "state_call" and "no state_call" in message


def test_registry_from_metagraph_rules():
    neurons = [ChainNeuron(3, "c", "10.0.0.3:1", 0.0, False), ChainNeuron(1, "a", "10.0.0.1:1", 2000.0, True),
               ChainNeuron(2, "b", None, 0.0, False), ChainNeuron(0, "me", "10.0.0.9:1", 0.0, False)]
    assert [(e.uid, e.hotkey) for e in registry_from_metagraph(neurons, "me", 1000.0)] == [(3, "c")]
    assert [(e.uid, e.hotkey) for e in registry_from_metagraph(neurons, "me", 5000.0)] == [(1, "a"), (3, "c")]
