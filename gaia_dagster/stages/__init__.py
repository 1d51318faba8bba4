"""The validator's stages as plain functions over the repository, the miner client and the sources.

Assets, sensors and benchmarks call these; nothing here imports Dagster. Each stage is idempotent:
rerunning it for the same (run, miner) lands on the same row and never repeats finished work.
"""
