"""Sensors: miner registry, forecast poll, ERA5 availability."""
