"""Parts of `scripts/benchmark.py`: the raw pipeline, the service and naive peer under load, memory."""
