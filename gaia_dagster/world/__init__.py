"""The embedded default: a deterministic synthetic atmosphere and the sources over it."""
