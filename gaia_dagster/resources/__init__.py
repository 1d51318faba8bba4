"""Dagster resources and the validator's clients (the miner HTTP client lives in ``miner_client``)."""
