"""The validator's side of the miner protocol as a Dagster resource: identity, timeouts, retries."""

from __future__ import annotations

from functools import lru_cache

from dagster import ConfigurableResource

from gaia_dagster.core.retry import StageRetry, retry_policies
from gaia_dagster.resources.fiber_session import FiberSession
from gaia_dagster.resources.identity import ValidatorIdentity, resolve_identity
from gaia_dagster.resources.miner_client import MinerClient
from gaia_dagster.resources.store_reader import RateFloor
from gaia_dagster.resources.settings import DEFAULT_VALIDATOR_URI, DecimalText, decimal_setting


@lru_cache(maxsize=8)
def hotkey_for_uri(uri: str) -> str:
    """The ss58 hotkey of a key URI (a dev URI such as ``//name`` or a mnemonic)."""
    from bittensor_wallet import Keypair

    return Keypair.create_from_uri(uri).ss58_address


_FIBER_SESSIONS: dict[tuple[str, tuple[str, ...]], FiberSession] = {}


def fiber_session(keypair, self_signed_miner_urls: tuple[str, ...] = ()) -> FiberSession:  # noqa: ANN001
    """The process's Fiber session of one validator hotkey: symmetric keys are exchanged once per
    miner and reused (at most 2 h) across clients, runs and sensor ticks of this process."""
    key = (keypair.ss58_address, self_signed_miner_urls)
    if key not in _FIBER_SESSIONS:
        _FIBER_SESSIONS[key] = FiberSession(keypair, insecure_tls=self_signed_miner_urls)
    return _FIBER_SESSIONS[key]


class MinerAccess(ConfigurableResource):
    """How this validator talks to miners: who it signs as, timeouts, retries.

    Identity (``resources/identity.py``): the hotkey of wallet ``wallet_name`` (``GAIA_WALLET_NAME``;
    ``wallet_hotkey`` and ``wallet_path`` default to bittensor's ``default`` and
    ``~/.bittensor/wallets``) when a wallet name is set, else the key URI ``validator_hotkey_uri``
    (``GAIA_VALIDATOR_URI``, the public development key by default).

    ``retry_scale`` multiplies every backoff of the refactor plan (1.0 in production; the demo
    compresses a day into minutes with a small value). ``self_signed_miner_urls``: miner base URLs
    (https) whose self-signed certificates are accepted, per miner, as the deployed validator does. ``retry_scale``, ``read_timeout_s`` and
    ``answer_deadline_s`` are decimal text so that ``EnvVar`` can supply them (``resources/settings.py``).

    ``answer_deadline_s`` (``GAIA_ANSWER_DEADLINE_S``): the whole time one JSON call to a miner (poll,
    initiate-fetch, kerchunk, with its Fiber handshake) may take, however the miner drips or stalls.
    A poll tick of N jobs lasts at most about ceil(N / ``poll_concurrency``) x ``answer_deadline_s``:
    256 miners, 64 at once, 5 s -> 20 s, under Dagster's 60 s sensor limit whatever the miners do.

    ``slow_store_grace_s`` and ``slow_store_bytes_per_s`` (``GAIA_SLOW_STORE_GRACE_S``,
    ``GAIA_SLOW_STORE_BPS``): the fast lane's floor of a store read (``store_reader.RateFloor``). A
    read that falls below it stops; the job is read again in the slow lane, whose runs the instance's
    ``gaia/lane`` tag limit bounds, so slow stores never take every run slot.
    """

    validator_hotkey_uri: str = DEFAULT_VALIDATOR_URI
    wallet_name: str = ""
    wallet_hotkey: str = ""
    wallet_path: str = ""
    connect_timeout_s: float = 5.0
    read_timeout_s: DecimalText = "30"
    answer_deadline_s: DecimalText = "5"
    poll_concurrency: int = 64
    retry_scale: DecimalText = "1.0"
    slow_store_grace_s: DecimalText = "10"
    slow_store_bytes_per_s: DecimalText = "1000000"
    self_signed_miner_urls: list[str] = []

    def identity(self) -> ValidatorIdentity:
        """The validator's keypair and where it came from (wallet, else key URI)."""
        return resolve_identity(self.wallet_name, self.wallet_hotkey, self.wallet_path, self.validator_hotkey_uri)

    def validator_hotkey(self) -> str:
        return self.identity().ss58

    def client(self) -> MinerClient:
        """A client that speaks the Fiber transport as this validator's hotkey (key exchange per
        miner, signed headers, encrypted bodies: what real Gaia miners accept)."""
        return MinerClient(connect_timeout=self.connect_timeout_s,
                           read_timeout=decimal_setting(self.read_timeout_s, "read_timeout_s", "GAIA_MINER_TIMEOUT_S"),
                           answer_deadline=decimal_setting(self.answer_deadline_s, "answer_deadline_s",
                                                           "GAIA_ANSWER_DEADLINE_S"),
                           fiber=fiber_session(self.identity().keypair, tuple(self.self_signed_miner_urls)),
                           store_floor=self.store_floor())

    def store_floor(self) -> RateFloor:
        """The fast lane's floor of a store read (``GAIA_SLOW_STORE_GRACE_S``, ``GAIA_SLOW_STORE_BPS``)."""
        return RateFloor(decimal_setting(self.slow_store_grace_s, "slow_store_grace_s", "GAIA_SLOW_STORE_GRACE_S"),
                         decimal_setting(self.slow_store_bytes_per_s, "slow_store_bytes_per_s", "GAIA_SLOW_STORE_BPS"))

    def retry(self, stage: str) -> StageRetry:
        return retry_policies(decimal_setting(self.retry_scale, "retry_scale", "GAIA_RETRY_SCALE"))[stage]
