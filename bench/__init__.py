"""eventhub benchmarks: run with ``python -m bench``."""
