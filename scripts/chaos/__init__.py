"""Parts of `scripts/reliability.py`: retrying clients, injected faults, database checks."""
