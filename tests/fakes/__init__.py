"""Fakes of vendor APIs for the source tests: stateful servers on 127.0.0.1."""
