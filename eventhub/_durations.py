"""Durations as people write them in a config: ``"every 10m"``, ``"6h"``, ``"30s"``."""

from __future__ import annotations

import re

_EVERY = re.compile(r"(?:every\s+)?(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(text: str) -> float | None:
    """The seconds ``text`` says (``"every 6h"``, ``"10m"``, ``"1.5d"``), or None
    when it is not a duration."""
    every = _EVERY.fullmatch(" ".join(text.split()))
    if every is None:
        return None
    return float(every.group(1)) * _UNIT_SECONDS[every.group(2).lower()]
