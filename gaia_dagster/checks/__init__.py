"""Asset checks: global invariants of the validator DB."""
