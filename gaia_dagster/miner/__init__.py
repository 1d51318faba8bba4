"""The reference miner: a FastAPI app speaking the Gaia miner API, with forecast profiles."""
