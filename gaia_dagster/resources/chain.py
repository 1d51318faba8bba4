"""The subnet on the Bittensor chain, through the ``bittensor`` SDK: the metagraph and the weights.

A thin adapter: it reads the metagraph (UID, hotkey, axon, stake, validator permit) and the
hyperparameters that shape a weight submission, and submits weights with the SDK's ``SetWeights``
intent, which picks a plain ``set_weights`` or a timelocked commit (commit-reveal) from the subnet's
own ``CommitRevealWeightsEnabled``. Every rule (who is a miner, the weights' u16 form) is in ``core``.

Settings (README "Configuration"): ``network`` (``GAIA_CHAIN_NETWORK``: ``finney``, ``test``,
``local`` or a ``ws://``/``wss://`` endpoint; empty, the embedded default, means no chain),
``netuid`` (``GAIA_NETUID``, 57), ``weights_mode`` (``GAIA_WEIGHTS``: ``dry-run``, the default,
or ``submit``), ``version_key`` (``GAIA_WEIGHTS_VERSION_KEY``; empty: the subnet's
``WeightsVersionKey``), ``min_validator_stake`` (``GAIA_MIN_VALIDATOR_STAKE``, 1000).
The SDK is imported only here and only when the chain is used.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, TypeVar

from dagster import ConfigurableResource

from gaia_dagster.core.chain_weights import U16_MAX, ChainWeights, WeightRules
from gaia_dagster.core.registry import ChainNeuron
from gaia_dagster.resources.settings import DecimalText, decimal_setting

T = TypeVar("T")
WEIGHTS_MODES = ("dry-run", "submit")


class ChainError(RuntimeError):
    """The chain could not be read or written; the message names the network, the netuid and the call."""


class SubnetChain(ConfigurableResource):
    """Subnet ``netuid`` on ``network`` (see module doc); ``network`` empty means no chain."""

    network: str = ""
    netuid: str = "57"
    weights_mode: str = "dry-run"
    version_key: str = ""
    min_validator_stake: DecimalText = "1000"
    # Gaia's weight environment, under Gaia's own names (core/weights_deployed.WeightEnv); empty: Gaia's default
    burn_rate: str = ""
    burn_hotkey: str = ""
    burn_miner_emission: str = ""
    weight_contrast_gamma: str = ""
    # blocks between weight settings (core/weights_cadence; the subnet's rate limit when longer)
    weights_interval_blocks: str = "250"

    # -- settings ------------------------------------------------------------------------------------
    @property
    def configured(self) -> bool:
        return bool(self.network.strip())

    def subnet(self) -> int:
        """The netuid as an integer (a clear error naming ``GAIA_NETUID`` otherwise)."""
        try:
            return int(str(self.netuid).strip())
        except ValueError:
            raise ValueError(f"netuid must be an integer (GAIA_NETUID), not {self.netuid!r}") from None

    def submits(self) -> bool:
        """True when weights go to the chain; ``dry-run`` (the default) only records them."""
        mode = self.weights_mode.strip().lower()
        if mode not in WEIGHTS_MODES:
            raise ValueError(f"weights_mode (GAIA_WEIGHTS) must be one of {', '.join(WEIGHTS_MODES)}, not {mode!r}")
        return mode == "submit"

    def validator_stake_threshold(self) -> float:
        return decimal_setting(self.min_validator_stake, "min_validator_stake", "GAIA_MIN_VALIDATOR_STAKE")

    def weight_env(self) -> dict[str, str]:
        """The Gaia weight settings that are set, by Gaia's variable names."""
        named = {"BURN_RATE": self.burn_rate, "BURN_HOTKEY": self.burn_hotkey,
                 "BURN_MINER_EMISSION": self.burn_miner_emission, "WEIGHT_CONTRAST_GAMMA": self.weight_contrast_gamma}
        return {name: value for name, value in named.items() if str(value).strip()}

    def interval_blocks(self) -> int:
        """Gaia's 250 blocks between weight settings unless ``GAIA_WEIGHTS_INTERVAL_BLOCKS`` says otherwise."""
        try:
            blocks = int(str(self.weights_interval_blocks).strip())
        except ValueError:
            blocks = 0
        if blocks < 1:
            raise ValueError(f"weights_interval_blocks (GAIA_WEIGHTS_INTERVAL_BLOCKS) must be a whole number of "
                             f"blocks >= 1, not {self.weights_interval_blocks!r}")
        return blocks

    def describe(self) -> str:
        return f"netuid {self.subnet()} on {self.network or '(no chain configured)'}"

    # -- the SDK ---------------------------------------------------------------------------------------
    def client(self) -> Any:
        """A cold async SDK client for ``network`` (connected by ``_call``)."""
        import bittensor

        return bittensor.Client(self.network.strip())

    def _call(self, what: str, action: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``action(client)`` on a fresh connection; any failure is a ``ChainError`` naming
        the network, the subnet and ``what`` was being done."""
        if not self.configured:
            raise ChainError(f"{what}: no chain configured (set GAIA_CHAIN_NETWORK)")

        async def run() -> T:
            client = self.client()
            await client.connect()
            try:
                return await action(client)
            finally:
                await client.close()

        try:
            return asyncio.run(run())
        except ChainError:
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK/transport failure becomes one clear error
            raise ChainError(f"{what} for {self.describe()}: {type(exc).__name__}: {exc}") from exc

    def neurons(self) -> list[ChainNeuron]:
        """Every UID of the subnet's metagraph, read at one block."""
        return self.metagraph()[1]

    def metagraph(self) -> tuple[int, list[ChainNeuron]]:
        """The block the metagraph was read at and every UID of it."""
        netuid = self.subnet()

        async def read(client: Any) -> tuple[int, list[ChainNeuron]]:
            graph = await client.subnets.metagraph(netuid, commitments=False)
            if graph is None:
                raise ChainError(f"reading the metagraph: subnet {netuid} does not exist on {self.network}")
            return int(graph.block), [ChainNeuron(n.uid, n.hotkey, n.axon, float(n.total_stake.amount),
                                                  bool(n.validator_permit), int(n.last_update or 0))
                                      for n in graph.neurons]

        return self._call("reading the metagraph", read)

    def weight_rules(self) -> WeightRules:
        """The subnet's max-weight limit, minimum weight count, commit-reveal switch and the
        version key to send (the setting when given, else the subnet's ``WeightsVersionKey``)."""
        netuid = self.subnet()

        async def read(client: Any) -> WeightRules:
            from bittensor import storage

            module = storage.SubtensorModule
            limit, minimum, reveal, version, rate_limit = await asyncio.gather(
                client.query(module.MaxWeightsLimit, [netuid]), client.query(module.MinAllowedWeights, [netuid]),
                client.query(module.CommitRevealWeightsEnabled, [netuid]), client.query(module.WeightsVersionKey, [netuid]),
                client.query(module.WeightsSetRateLimit, [netuid]))
            key = int(self.version_key) if str(self.version_key).strip() else int(version or 0)
            return WeightRules(netuid, int(limit) if limit is not None else U16_MAX, int(minimum or 0), bool(reveal), key,
                               int(rate_limit or 0))

        return self._call("reading the weight hyperparameters", read)

    def submit(self, weights: ChainWeights, signer: Any) -> dict[str, Any]:
        """Submit weights already in the chain's form (``core/chain_weights``), as they are."""
        if not weights.submittable:
            raise ChainError(f"submitting weights for {self.describe()}: not submittable: {'; '.join(weights.problems)}")
        return self.submit_values(list(weights.uids), list(weights.values), weights.rules, signer)

    def submit_values(self, uids: list[int], values: list[int], rules: WeightRules, signer: Any) -> dict[str, Any]:
        """Submit u16 ``values`` on ``uids`` with ``rules.version_key`` and ``signer`` (the validator's
        hotkey keypair) through the SDK's ``SetWeights`` (a plain ``set_weights``, or a timelocked
        commit on a commit-reveal subnet). Returns the extrinsic's id, block hash, message and path."""

        async def send(client: Any) -> dict[str, Any]:
            from bittensor import SetWeights

            intent = SetWeights(netuid=rules.netuid, uids=list(uids), weights=[float(v) for v in values],
                                version_key=rules.version_key)
            result = (await client.execute(intent, signer)).raise_for_failure()
            return {"extrinsic_id": result.extrinsic_id, "block_hash": result.block_hash, "message": result.message,
                    "path": "commit-reveal (timelocked)" if rules.commit_reveal else "set_weights"}

        return self._call("submitting weights", send)
