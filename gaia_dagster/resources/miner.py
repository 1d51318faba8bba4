"""The validator's side of the miner protocol as a Dagster resource: identity, timeouts, retries."""

from __future__ import annotations

from functools import lru_cache

from dagster import ConfigurableResource

from gaia_dagster.core.retry import StageRetry, retry_policies
from gaia_dagster.resources.miner_client import MinerClient
from gaia_dagster.resources.settings import DEFAULT_VALIDATOR_URI


@lru_cache(maxsize=8)
def hotkey_for_uri(uri: str) -> str:
    """The ss58 hotkey of a key URI (a dev URI such as ``//name`` or a mnemonic)."""
    from bittensor_wallet import Keypair

    return Keypair.create_from_uri(uri).ss58_address


class MinerAccess(ConfigurableResource):
    """How this validator talks to miners.

    ``retry_scale`` multiplies every backoff of the refactor plan (1.0 in production; the demo
    compresses a day into minutes with a small value).
    """

    validator_hotkey_uri: str = DEFAULT_VALIDATOR_URI
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    poll_concurrency: int = 32
    retry_scale: float = 1.0

    def validator_hotkey(self) -> str:
        return hotkey_for_uri(self.validator_hotkey_uri)

    def client(self) -> MinerClient:
        """A client that signs every miner request with this validator's hotkey (signed transport)."""
        from gaia_dagster.core.signing import keypair_from_uri
        from gaia_dagster.core.transport import SignedTransport

        return MinerClient(connect_timeout=self.connect_timeout_s, read_timeout=self.read_timeout_s,
                           signer=SignedTransport(keypair_from_uri(self.validator_hotkey_uri)))

    def retry(self, stage: str) -> StageRetry:
        return retry_policies(self.retry_scale)[stage]
