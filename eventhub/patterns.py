"""Type patterns and attribute filters, compiled once per subscription.

Patterns follow AMQP topic rules over dot-separated segments: ``*`` matches exactly
one segment, ``**`` (alias ``#``) zero or more. Every other segment is literal and
compared case-sensitively, as CloudEvents filters compare: ``Microsoft.Storage.*``
matches ``Microsoft.Storage.BlobCreated``, ``microsoft.storage.*`` does not. A ``*``
stands for whole segments only (``user.*x`` is refused). Filters use the CloudEvents
subscription dialects ``exact``, ``prefix``, ``suffix``, ``all``, ``any`` and ``not``,
or a Python predicate taking the event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from .errors import InvalidSubscription
from .events import Event

Predicate: TypeAlias = Callable[[Event], bool]
FilterSpec: TypeAlias = Mapping[str, Any] | Sequence[Any] | Predicate | None

_CACHE_LIMIT = 4096


class TypePattern:
    """One or more type patterns; ``matches(type)`` is cached per type name."""

    __slots__ = ("patterns", "exact_types", "_regex", "_exact", "_cache")

    def __init__(self, patterns: str | Iterable[str]) -> None:
        if isinstance(patterns, str):
            patterns = [patterns]
        self.patterns: tuple[str, ...] = tuple(patterns)
        if not self.patterns:
            raise InvalidSubscription("pattern", "at least one type pattern is needed")
        exact: set[str] = set()
        alternatives: list[str] = []
        for pattern in self.patterns:
            regex = _pattern_regex(pattern)
            if regex is None:
                exact.add(pattern)
            else:
                alternatives.append(regex)
        self._exact = frozenset(exact)
        #: The type names, when no pattern has a wildcard (then a log can look them
        #: up instead of matching every type); else None.
        self.exact_types: tuple[str, ...] | None = (
            None if alternatives else self.patterns
        )
        self._regex = re.compile("|".join(alternatives)) if alternatives else None
        self._cache: dict[str, bool] = {}

    def matches(self, type_name: str) -> bool:
        """Whether an event type matches any of the patterns."""
        hit = self._cache.get(type_name)
        if hit is None:
            hit = type_name in self._exact or (
                self._regex is not None
                and self._regex.fullmatch("." + type_name) is not None
            )
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[type_name] = hit
        return hit

    __call__ = matches

    def __repr__(self) -> str:
        return f"TypePattern({', '.join(self.patterns)})"


def _pattern_regex(pattern: str) -> str | None:
    """Regex over ``"." + type`` for a wildcard pattern; ``None`` for a plain type."""
    if not isinstance(pattern, str) or not pattern:
        raise InvalidSubscription("pattern", f"{pattern!r} is not a type pattern")
    if not pattern.isascii():
        try:
            pattern.encode()
        except UnicodeEncodeError:
            raise InvalidSubscription(
                "pattern", f"{pattern[:80]!r} is not valid Unicode text"
            ) from None
    segments = pattern.split(".")
    pieces: list[str] = []
    wildcard = False
    for segment in segments:
        if segment in ("**", "#"):
            pieces.append(r"(?:\.[^.]+)*")
            wildcard = True
        elif segment == "*":
            pieces.append(r"\.[^.]+")
            wildcard = True
        elif "*" in segment:
            raise InvalidSubscription(
                "pattern",
                f"{pattern[:80]!r}: segment {segment[:40]!r} mixes '*' with other "
                "characters ('*', '**' and '#' stand for whole segments)",
            )
        else:
            pieces.append(r"\." + re.escape(segment))
    return "".join(pieces) if wildcard else None


def compile_filter(spec: FilterSpec) -> Predicate | None:
    """Compile a filter into a predicate over events.

    Args:
        spec: ``None``; a callable ``(event) -> bool``; a CloudEvents dialect mapping
            such as ``{"prefix": {"subject": "acct/"}}``; or a list of these, all of
            which must hold.

    Raises:
        InvalidSubscription: for an unknown dialect or a malformed expression.
    """
    if spec is None:
        return None
    if callable(spec):
        return spec
    if isinstance(spec, Mapping):
        return _compile_dialects(spec)
    if isinstance(spec, Sequence) and not isinstance(spec, str | bytes):
        return _all([_compile_required(item) for item in spec])
    raise InvalidSubscription("filter", f"cannot use {type(spec).__name__} as a filter")


def _compile_required(spec: Any) -> Predicate:
    predicate = compile_filter(spec)
    if predicate is None:
        raise InvalidSubscription("filter", "a nested filter cannot be empty")
    return predicate


def _compile_dialects(spec: Mapping[str, Any]) -> Predicate:
    if not spec:
        raise InvalidSubscription("filter", "an empty mapping is not a filter")
    parts: list[Predicate] = []
    for dialect, expression in spec.items():
        if dialect in ("exact", "prefix", "suffix"):
            parts.append(_compile_attribute_dialect(dialect, expression))
        elif dialect in ("all", "any"):
            if isinstance(expression, Mapping | str) or not isinstance(
                expression, Sequence
            ):
                raise InvalidSubscription(
                    "filter", f"{dialect!r} takes a list of filters"
                )
            if not expression:
                raise InvalidSubscription(
                    "filter", f"{dialect!r} needs at least one filter"
                )
            children = [_compile_required(item) for item in expression]
            parts.append(_all(children) if dialect == "all" else _any(children))
        elif dialect == "not":
            parts.append(_negate(_compile_required(expression)))
        else:
            raise InvalidSubscription(
                "filter",
                f"unknown dialect {dialect!r} "
                "(use exact, prefix, suffix, all, any, not, or a Python predicate)",
            )
    return _all(parts)


def _compile_attribute_dialect(dialect: str, expression: Any) -> Predicate:
    if not isinstance(expression, Mapping) or not expression:
        raise InvalidSubscription(
            "filter", f"{dialect!r} takes a mapping of attribute to value"
        )
    checks: list[tuple[str, str]] = []
    for attribute, value in expression.items():
        if not isinstance(attribute, str) or not isinstance(value, str | int | bool):
            raise InvalidSubscription(
                "filter", f"{dialect!r}: {attribute!r} must map to a string"
            )
        checks.append((attribute, _as_text(value)))
    if dialect == "exact":
        test: Callable[[str, str], bool] = str.__eq__
    elif dialect == "prefix":
        test = str.startswith
    else:
        test = str.endswith

    def predicate(event: Event) -> bool:
        for attribute, value in checks:
            actual = attribute_text(event, attribute)
            if actual is None or not test(actual, value):
                return False
        return True

    return predicate


def attribute_text(event: Event, attribute: str) -> str | None:
    """An event attribute (core or extension) as CloudEvents text, or None if absent."""
    if attribute in ("data", "data_base64", "extensions", "_payload"):
        return None
    if attribute == "time":
        return event.to_dict()["time"]
    value = getattr(event, attribute, None) if hasattr(Event, attribute) else None
    if value is None:
        value = event.extensions.get(attribute)
    return None if value is None else _as_text(value)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _all(predicates: list[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    return lambda event: all(p(event) for p in predicates)


def _negate(predicate: Predicate) -> Predicate:
    return lambda event: not predicate(event)


def _any(predicates: list[Predicate]) -> Predicate:
    return lambda event: any(p(event) for p in predicates)
