"""Prometheus metrics for ``GET /metrics``.

Two kinds of figures:

* Counters of what this process did since it started: events published and
  delivered, failed deliveries, dead letters, HTTP requests (fed by the bus's
  signals and by the HTTP server).
* Figures read from the state database at scrape time, true for every process
  sharing it and across restarts: the last sequence of the log, each durable
  subscription's lag, pending retries and dead letters, and workflow runs by
  status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import signals

if TYPE_CHECKING:
    from ..hub import Hub

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HubMetrics:
    """The metrics of one hub, in a registry of their own.

    Args:
        hub: The hub whose bus and state database are measured.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.published = Counter(
            "eventhub_events_published",
            "Events stored by this process.",
            registry=r,
        )
        self.delivered = Counter(
            "eventhub_events_delivered",
            "Deliveries whose handler returned, by subscription.",
            ["subscription"],
            registry=r,
        )
        self.failed = Counter(
            "eventhub_deliveries_failed",
            "Deliveries whose handler raised, by subscription.",
            ["subscription"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "eventhub_events_dead_lettered",
            "Deliveries that failed for good, by subscription.",
            ["subscription"],
            registry=r,
        )
        self.http_requests = Counter(
            "eventhub_http_requests",
            "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "eventhub_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.http_refused = Counter(
            "eventhub_http_connections_refused",
            "Connections the HTTP server cut before a request was answered, by "
            "reason: header_timeout, body_timeout, headers_too_large, "
            "too_many_connections.",
            ["reason"],
            registry=r,
        )
        self.http_writes_waiting = Gauge(
            "eventhub_http_writes_waiting",
            "HTTP requests (webhook deliveries, POST /events) waiting for their "
            "events to be written to the state database.",
            registry=r,
        )
        r.register(_StateCollector(hub))
        self._connected = False

    def connect(self) -> None:
        """Start counting the bus's signals."""
        if self._connected:
            return
        bus = self.hub.bus
        signals.event_published.connect(self._on_published, sender=bus)
        signals.event_delivered.connect(self._on_delivered, sender=bus)
        signals.delivery_failed.connect(self._on_failed, sender=bus)
        signals.event_dead_lettered.connect(self._on_dead, sender=bus)
        self._connected = True

    def disconnect(self) -> None:
        if not self._connected:
            return
        signals.event_published.disconnect(self._on_published)
        signals.event_delivered.disconnect(self._on_delivered)
        signals.delivery_failed.disconnect(self._on_failed)
        signals.event_dead_lettered.disconnect(self._on_dead)
        self._connected = False

    def _on_published(self, _sender: Any, **_kw: Any) -> None:
        self.published.inc()

    def _on_delivered(self, _sender: Any, *, subscription: str, **_kw: Any) -> None:
        self.delivered.labels(subscription).inc()

    def _on_failed(self, _sender: Any, *, subscription: str, **_kw: Any) -> None:
        self.failed.labels(subscription).inc()

    def _on_dead(self, _sender: Any, *, subscription: str, **_kw: Any) -> None:
        self.dead_lettered.labels(subscription).inc()

    def observe_request(
        self, method: str, route: str, status: int, seconds: float
    ) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(route).observe(seconds)

    def connection_refused(self, reason: str) -> None:
        """Count a connection the HTTP protocol cut (see
        :mod:`eventhub.server._protocol`)."""
        self.http_refused.labels(reason).inc()

    def watch_writes(self, waiting: Callable[[], float]) -> None:
        """Read ``eventhub_http_writes_waiting`` from ``waiting`` at scrape time."""
        self.http_writes_waiting.set_function(waiting)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Figures read from the state database when scraped."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        last = hub.log.last_sequence()
        yield GaugeMetricFamily(
            "eventhub_log_last_sequence",
            "Sequence number of the newest event in the log.",
            value=last,
        )
        lag = GaugeMetricFamily(
            "eventhub_subscription_lag",
            "Events in the log not yet acknowledged by a durable subscription.",
            labels=["subscription"],
        )
        pending = GaugeMetricFamily(
            "eventhub_subscription_pending",
            "Deliveries waiting for a retry.",
            labels=["subscription"],
        )
        dead = GaugeMetricFamily(
            "eventhub_dead_letters",
            "Dead letters stored, by subscription.",
            labels=["subscription"],
        )
        for s in hub.bus.durable_status():
            lag.add_metric([s.name], max(0, last - s.cursor))
            pending.add_metric([s.name], s.pending)
            dead.add_metric([s.name], s.dead_letters)
        yield from (lag, pending, dead)
        runs = CounterMetricFamily(
            "eventhub_workflow_runs",
            "Workflow runs recorded in the state database, by workflow and status.",
            labels=["workflow", "status"],
        )
        for (workflow, status), count in hub.orchestrator.runs.counts().items():
            runs.add_metric([workflow, status], count)
        yield runs
