"""Pure domain logic of the Gaia weather task. Nothing here imports Dagster or does I/O."""
