"""Software-defined assets of the validator, one file per domain concept."""
