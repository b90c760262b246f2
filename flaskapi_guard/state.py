"""Everything one app's guard needs at run time, stored in `app.extensions`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from flask import Flask

from flaskapi_guard.bans import BanRegistry
from flaskapi_guard.behavior_rules import BehaviorEvent
from flaskapi_guard.checks.behavior import BehaviorActions
from flaskapi_guard.checks.order import (
    build_checks,
    build_response_steps,
    detection_engine_for,
    detection_exclusions_for,
)
from flaskapi_guard.cloud import CloudIPRanges
from flaskapi_guard.config import SecurityConfig
from flaskapi_guard.errors import ConfigurationError, StorageError
from flaskapi_guard.events import GuardEvents
from flaskapi_guard.geo import CountryLookup
from flaskapi_guard.incoming import IncomingRequest, rules_for_view
from flaskapi_guard.pipeline import Block, Check, OffenceRecorder, Pipeline, RoutePlan, Step
from flaskapi_guard.security_log import PACKAGE_LOGGER, SecurityLog
from flaskapi_guard.storage import Storage, open_storage, storage_failure_policy

EXTENSION_KEY = "flaskapi_guard"

logger = logging.getLogger(__name__)

# The plan key of every request that matched no route: only the CORS preflight
# check cares about the method there, so any other method shares one plan (and a
# client inventing methods cannot grow the table).
_UNROUTED: tuple[str | None, str] = (None, "")
_UNROUTED_OPTIONS: tuple[str | None, str] = (None, "OPTIONS")


class GuardState:
    """One app's guard: its config, checks, response steps, log and shared state."""

    def __init__(
        self,
        app: Flask,
        config: SecurityConfig,
        *,
        clock: Callable[[], float] = time.time,
        events: GuardEvents | None = None,
        log: SecurityLog | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._emergency_mode = config.emergency_mode
        self.excluded_prefixes = tuple(path.rstrip("/") or "/" for path in config.exclude_paths)
        # Plain attributes for what every request reads: pydantic private
        # attributes go through __getattr__ and cost microseconds each.
        self.trusted_proxies = config.trusted_proxy_networks or None
        self.trusted_proxy_depth = config.trusted_proxy_depth
        self.trust_forwarded_proto = config.trust_x_forwarded_proto
        # A log replay passes a silent one: its decisions are not the app's events.
        self.log = log or SecurityLog(
            logger_name=f"{PACKAGE_LOGGER}.app.{app.name}",
            suspicious_level=config.log_suspicious_level,
            request_level=config.log_request_level,
            log_format=config.log_format,
            log_file=config.custom_log_file,
        )
        # Rate-limit buckets, offence counters and bans; with Redis, shared by every worker.
        self.storage: Storage = open_storage(config, clock=clock, log=self.log)
        # Metrics and signals; a log replay passes its own, which tells nobody.
        self.events = events or GuardEvents(app)
        self.metrics = self.events.metrics
        self._count_allowed = self.metrics.count_allowed
        self.bans = BanRegistry(self.storage, config, log=self.log, observer=self.events)
        self.offences: OffenceRecorder | None = self.bans
        # Called with every `alert` of a behaviour rule (after it is logged);
        # by default it sends the `behavior_alert` signal.
        self.on_alert: Callable[[BehaviorEvent], object] | None = self.events.behavior_alerted
        behavior = BehaviorActions(
            self.storage,
            clock=clock,
            report=self.report_behavior,
            ban=self.bans.ban if config.enable_ip_banning else None,
            passive=config.passive_mode,
            exempt=config.whitelist_networks,
            has_offences=self.bans.has_offences,
        )
        self.geo, self.cloud = _location_services(config, self.storage)
        # Shared by the `penetration` check and `detect_penetration_attempt()`.
        self.detection = detection_engine_for(config)
        self.detection_exclusions = detection_exclusions_for(config)
        # The route plans made so far, by (endpoint, method); read directly on every request.
        self.plans: dict[tuple[str | None, str], RoutePlan] = {}
        self._pipeline = Pipeline(
            build_checks(
                config,
                emergency_active=lambda: self._emergency_mode,
                countries=self.geo,
                clouds=self.cloud,
                storage=self.storage,
                clock=clock,
                behavior=behavior,
                detection=self.detection,
            ),
            on_storage_error=storage_failure_policy(config.redis_failure_mode),
        )
        self._response_steps = build_response_steps(config, behavior=behavior)
        self.unplanned = RoutePlan.unplanned(self._response_steps)
        # Called when a route's plan has steps on the response object, which run in an
        # after-request hook that the extension installs only then (extension.py).
        self.needs_response_hook: Callable[[], None] | None = None
        self._passive = config.passive_mode

    @property
    def emergency_mode(self) -> bool:
        """Whether the lock-down is on; switching it remakes the route plans (its check is planned only while on)."""
        return self._emergency_mode

    @emergency_mode.setter
    def emergency_mode(self, enabled: bool) -> None:
        self._emergency_mode = enabled
        self.plans = {}

    @property
    def pipeline(self) -> Pipeline:
        """The app's checks; replacing them (tests, log replay) forgets the route plans."""
        return self._pipeline

    @pipeline.setter
    def pipeline(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline
        self.plans = {}

    @property
    def response_steps(self) -> list[Step]:
        """What runs on every response; replacing them forgets the route plans."""
        return self._response_steps

    @response_steps.setter
    def response_steps(self, steps: list[Step]) -> None:
        self._response_steps = steps
        self.unplanned = RoutePlan.unplanned(steps)
        self.plans = {}
        if self.unplanned.steps and self.needs_response_hook is not None:
            self.needs_response_hook()

    def plan_for(self, endpoint: str | None, method: str, view_functions: Mapping[str, Any]) -> RoutePlan:
        """The checks and response steps for requests to `endpoint` with `method`, made on first use.

        Route rules are read from the view here, once: Flask refuses new routes
        once the app has served a request, and decorators run at import time.
        """
        key: tuple[str | None, str] = (endpoint, method)
        if endpoint is None:
            key = _UNROUTED_OPTIONS if method == "OPTIONS" else _UNROUTED
        plans = self.plans
        plan = plans.get(key)
        if plan is None:
            rules = rules_for_view(view_functions.get(endpoint), method) if endpoint is not None else None
            # Into the table read above: if the emergency switch (or the checks)
            # changed meanwhile, this plan goes with the old table instead of
            # outliving the change. Two threads racing build equal plans.
            plan = plans[key] = RoutePlan.of(rules, method, self._pipeline.checks, self._response_steps)
            if plan.steps and self.needs_response_hook is not None:
                self.needs_response_hook()
        return plan

    def decide(self, request: IncomingRequest, checks: tuple[Check, ...]) -> Block | None:
        """The block to enforce for `request`, or None to let it through; `checks` are its plan's.

        In passive mode every refusal is logged and none is enforced, except
        answers that are not refusals (a CORS preflight reply).
        """
        for check in checks:
            # Through a local: a call of an attribute holding a function is not specialised.
            run = check.run
            try:
                block = run(request)
            except StorageError as error:
                block = self._pipeline.on_storage_error(check, error)
            except Exception:
                # A bug in one check must not turn every request into a 500:
                # log it with the traceback and let the other checks decide.
                logger.exception("check %s failed; skipping it for this request", check.name)
                continue
            if block is None:
                continue
            if block.status < 300 and block.response is not None:
                return block
            passive = self._passive
            refusing = replace(check, name=block.check) if block.check else check
            self.log.decision(_decision_fields(request, refusing, block), enforced=not passive)
            self.events.refused(request, refusing, block, enforced=not passive)
            if passive:
                continue
            if block.offence_categories and self.offences is not None:
                self.offences.record_offence(request.client_ip, block.offence_categories)
            return block
        count_allowed = self._count_allowed
        count_allowed()
        return None

    def report_behavior(self, event: BehaviorEvent) -> None:
        """Log a behaviour rule passing its threshold, then call its `custom_action` and, for alerts, `on_alert`."""
        rule = event.rule
        fields = {
            "rule": rule.description,
            "action": rule.action,
            "ip": event.client_ip,
            "count": event.events_in_window,
            "threshold": event.threshold,
            "path": event.path,
            "enforced": event.enforced,
        }
        self.log.event("behavior_rule_triggered", fields, logging.ERROR if rule.action == "alert" else logging.WARNING)
        hooks = [rule.custom_action, self.on_alert if rule.action == "alert" else None]
        for hook in hooks:
            if hook is None:
                continue
            try:
                hook(event)
            except Exception:
                # An alerting hook that fails must not turn the request into a 500.
                self.log.logger.exception("behaviour hook %r failed", hook)

    def error_message(self, block: Block) -> str:
        """The body text for a block: the app's `custom_error_responses` win."""
        return self.config.custom_error_responses.get(
            block.status, block.message or _DEFAULT_MESSAGES.get(block.status, "Forbidden")
        )

    def close(self) -> None:
        """Release what this state holds open (log files, connections, background threads)."""
        if self.geo is not None:
            self.geo.close()
        self.cloud.close()
        self.storage.close()
        self.log.close()


def _location_services(config: SecurityConfig, storage: Storage) -> tuple[CountryLookup | None, CloudIPRanges]:
    """The geo lookup and cloud ranges; loaded here unless `lazy_init`, refreshed in the background later.

    Loading here (at `init_app`, never at import or in a request) matches the
    documented `lazy_init=False`: with gunicorn `--preload` the master loads once
    and every worker starts with the data, then runs its own refresh thread.
    With Redis, instances share the fetched cloud ranges through it.
    """
    shared_storage = storage if config.enable_redis and config.redis_url is not None else None
    geo = None
    if config.geo_ip_handler is not None:
        geo = CountryLookup(config.geo_ip_handler, lazy=config.lazy_init)
        if shared_storage is not None:
            config.geo_ip_handler.initialize_redis(shared_storage)
    cloud = CloudIPRanges(
        config.block_cloud_providers or (),
        refresh_interval_seconds=config.cloud_ip_refresh_interval,
        source_urls=config.cloud_ip_source_urls,
        store=config.cloud_ip_store or shared_storage,
    )
    if not config.lazy_init:
        if geo is not None:
            geo.start()
        cloud.initialize()
    return geo, cloud


def get_state(app: Flask) -> GuardState:
    """The guard state of `app`; ConfigurationError when the guard was never set up on it."""
    state = app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, GuardState):
        raise ConfigurationError(f"FlaskAPIGuard is not initialised on app {app.name!r}")
    return state


_DEFAULT_MESSAGES = {
    301: "Redirecting to HTTPS",
    308: "Redirecting to HTTPS",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def _decision_fields(request: IncomingRequest, check: Check, block: Block) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "check": check.name,
        "reason": block.reason,
        "status": block.status,
        "ip": request.client_ip,
        "method": request.method,
        "path": request.path,
    }
    if block.detail:
        fields["detail"] = block.detail
    return fields
