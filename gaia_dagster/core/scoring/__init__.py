"""Gaia's scores as small pure functions over numpy arrays (GAIA_SPEC sections 4-6)."""
