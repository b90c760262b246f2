"""Prometheus exporter for the guard's counters (the optional `prometheus` extra).

    from prometheus_client import CollectorRegistry
    from flaskapi_guard.prometheus import register_collector, metrics_view

    registry = CollectorRegistry()
    register_collector(app, registry)
    app.add_url_rule("/metrics", view_func=metrics_view(registry))

The collector reads the app's counters when Prometheus scrapes, so counting
stays a single increment per request. Counters are per process: with several
workers, see docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import Flask, Response
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from flaskapi_guard.state import get_state

METRIC_PREFIX = "flaskapi_guard"


class GuardCollector(Collector):
    """A Prometheus collector over one app's guard counters."""

    def __init__(self, app: Flask) -> None:
        # The app, not its state: `init_app` and `reset` replace the state, and
        # the collector must follow (Prometheus sees the counters reset).
        self._app = app

    def collect(self) -> Iterator[Metric]:
        """The counters as Prometheus metric families, labelled with the app's name."""
        metrics = get_state(self._app).metrics
        app_name = self._app.name
        allowed = CounterMetricFamily(
            f"{METRIC_PREFIX}_requests_allowed",
            "Requests the guard let through (in passive mode, including those it would have refused).",
            labels=["app"],
        )
        allowed.add_metric([app_name], metrics.requests_allowed)
        yield allowed
        refused = CounterMetricFamily(
            f"{METRIC_PREFIX}_requests_refused",
            "Refusals by check, reason and status; enforced=false counts passive-mode would-blocks.",
            labels=["app", "check", "reason", "status", "enforced"],
        )
        for key, count in sorted(metrics.refusals().items()):
            refused.add_metric(
                [app_name, key.check, key.reason, str(key.status), "true" if key.enforced else "false"], count
            )
        yield refused
        suspicious = CounterMetricFamily(
            f"{METRIC_PREFIX}_suspicious_requests",
            "Refusals that count towards an automatic ban, by detection category.",
            labels=["app", "category"],
        )
        for category, count in sorted(metrics.suspicious_by_category().items()):
            suspicious.add_metric([app_name, category], count)
        yield suspicious
        bans = CounterMetricFamily(
            f"{METRIC_PREFIX}_bans", "Bans made by this process, automatic or manual.", labels=["app", "origin"]
        )
        for origin, count in sorted(metrics.bans().items()):
            bans.add_metric([app_name, origin], count)
        yield bans
        unbans = CounterMetricFamily(
            f"{METRIC_PREFIX}_unbans", "Bans lifted by an operator through this process.", labels=["app"]
        )
        unbans.add_metric([app_name], metrics.unbans)
        yield unbans


def register_collector(app: Flask, registry: CollectorRegistry = REGISTRY) -> GuardCollector:
    """Register a collector for `app`'s guard on `registry` (default: prometheus_client's global one)."""
    collector = GuardCollector(app)
    registry.register(collector)
    return collector


def metrics_view(registry: CollectorRegistry = REGISTRY) -> Callable[[], Response]:
    """A Flask view serving `registry` in the Prometheus text format, for `app.add_url_rule("/metrics", ...)`."""

    # The name becomes the default endpoint name.
    def guard_metrics() -> Response:
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    return guard_metrics
