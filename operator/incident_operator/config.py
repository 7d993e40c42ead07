"""Operator configuration: one YAML file (the Helm chart renders it into a ConfigMap).

Everything has a default, so the operator runs with no file at all. The file path comes from
``--config`` or ``INCIDENT_OPERATOR_CONFIG``. Unknown keys are refused with a clear message,
so a typo in the chart values is not silently ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .api import PRIORITIES

from .domain.alerts.alertmanager import AlertSettings, InvalidSettings, parse_settings as parse_alertmanager_settings
from .domain.alerts.alertmanager import with_fallback_namespace
from .domain.common.durations import parse_duration
from .domain.incident.calendar import BusinessCalendar
from .domain.incident.deadlines import DeadlinePolicy
from .domain.incident.lifecycle import DEFAULT_WARN_AT, LifecycleSettings, parse_warn_at
from .domain.notify.book import DeliverySettings
from .domain.incident.timeline import DEFAULT_TIMELINE_LIMIT

CONFIG_ENV = "INCIDENT_OPERATOR_CONFIG"
# Keep above the Prometheus scrape interval: see metrics.py (a new series is exposed at 0 first).
DEFAULT_NEW_SERIES_DELAY = 90.0
# Response SLO (docs/metrics.md, "Response SLOs"): the share of responses (first acknowledgements)
# that should meet the priority's response deadline. metrics.responseObjectives overrides them.
DEFAULT_RESPONSE_OBJECTIVES: Mapping[str, float] = {priority.value: 0.95 for priority in PRIORITIES}
KNOWN_KEYS = {
    "namespaces", "prometheus", "calendar", "deadlines", "timelineLimit", "metrics", "health",
    "detection", "notifications", "templates", "grafana", "alertmanager", "escalationPolicies", "intake",
}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class PrometheusConfig:
    url: str = "http://prometheus-operated.monitoring.svc:9090"
    bearer_token_file: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    timeout_seconds: float = 10.0
    external_url: str | None = None  # for graph links shown to people


@dataclass(frozen=True)
class TenantLimits:
    """``detection``: what one tenant's DetectionRules may use (docs/tenant-limits.md).

    ``allowed_prometheus_urls``: URL prefixes a rule's ``spec.prometheus.url`` may start with (empty:
    no rule may override the operator's Prometheus). ``max_series``/``max_response_bytes``: the bound
    on one query's answer. ``max_incidents_per_rule``/``max_incidents_per_namespace``: incidents opened
    per ``incident_budget_window`` seconds (the rest are suppressed). ``max_timeout``: the cap on a
    rule's ``spec.prometheus.timeout``. ``max_concurrent_per_namespace``: evaluation slots one
    namespace may hold at once, within ``maxConcurrentEvaluations``.
    """

    allowed_prometheus_urls: tuple[str, ...] = ()
    max_series: int = 100
    max_response_bytes: int = 8 * 1024 * 1024
    max_incidents_per_rule: int = 10
    max_incidents_per_namespace: int = 30
    incident_budget_window: float = 300.0
    max_timeout: float = 60.0
    max_concurrent_per_namespace: int = 4


TENANT_LIMIT_KEYS = ("maxConcurrentEvaluations", "allowedPrometheusURLs", "maxSeriesPerEvaluation",
                     "maxResponseBytes", "maxIncidentsPerRule", "maxIncidentsPerNamespace", "incidentBudgetWindow",
                     "maxTimeout", "maxConcurrentEvaluationsPerNamespace")


def parse_tenant_limits(detection: Mapping[str, Any]) -> TenantLimits:
    """``detection`` (the keys of :data:`TENANT_LIMIT_KEYS`) over the defaults; ConfigError when wrong."""
    unknown = sorted(set(detection) - set(TENANT_LIMIT_KEYS))
    if unknown:
        raise ConfigError(f"detection: unknown key(s) {', '.join(unknown)} (known: {', '.join(TENANT_LIMIT_KEYS)})")
    default = TenantLimits()

    def positive(key: str, fallback: int) -> int:
        value = detection.get(key, fallback)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"detection.{key} must be a positive integer, got {value!r}")
        return value

    def seconds(key: str, fallback: float) -> float:
        value = detection.get(key, fallback)
        try:
            result = parse_duration(value) if isinstance(value, str) else float(value)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"detection.{key}: {error}") from None
        if not result > 0:
            raise ConfigError(f"detection.{key} must be positive")
        return result

    urls = detection.get("allowedPrometheusURLs") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) and u.startswith(("http://", "https://"))
                                             and "@" not in u.split("/")[2] for u in urls):
        raise ConfigError("detection.allowedPrometheusURLs must be a list of http(s):// URL prefixes "
                          "without user:password@")
    return TenantLimits(
        allowed_prometheus_urls=tuple(urls),
        max_series=positive("maxSeriesPerEvaluation", default.max_series),
        max_response_bytes=positive("maxResponseBytes", default.max_response_bytes),
        max_incidents_per_rule=positive("maxIncidentsPerRule", default.max_incidents_per_rule),
        max_incidents_per_namespace=positive("maxIncidentsPerNamespace", default.max_incidents_per_namespace),
        incident_budget_window=seconds("incidentBudgetWindow", default.incident_budget_window),
        max_timeout=seconds("maxTimeout", default.max_timeout),
        max_concurrent_per_namespace=positive("maxConcurrentEvaluationsPerNamespace",
                                              default.max_concurrent_per_namespace),
    )


@dataclass(frozen=True)
class IntakeConfig:
    """``intake``: the one server every push-style intake shares (adapters/intake_server.py)."""

    port: int | None = None  # None: alertmanager.port (8082 by default), where the receiver has always been
    host: str = "0.0.0.0"


@dataclass(frozen=True)
class EscalationPoliciesConfig:
    namespace: str | None = None  # shared EscalationPolicies, looked up after the incident's namespace


@dataclass(frozen=True)
class OperatorConfig:
    """The whole configuration file, parsed once (:meth:`from_dict`); nothing reads the YAML again."""

    namespaces: tuple[str, ...] = ()
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    calendar: BusinessCalendar = field(default_factory=lambda: BusinessCalendar.from_dict({}))
    deadlines: DeadlinePolicy = field(default_factory=lambda: DeadlinePolicy.from_dict({}))
    warn_at: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: DEFAULT_WARN_AT)  # deadlines.warnAt
    timeline_limit: int = DEFAULT_TIMELINE_LIMIT
    metrics_port: int = 8080
    new_series_delay: float = DEFAULT_NEW_SERIES_DELAY  # metrics.newSeriesDelay, seconds
    response_objectives: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RESPONSE_OBJECTIVES))
    health_port: int = 8081
    max_concurrent_evaluations: int = 16
    delivery: DeliverySettings = field(default_factory=DeliverySettings)  # parsed `notifications`
    templates_configmap: str | None = None
    templates_namespace: str | None = None  # where templates.configMap is looked up after the incident's namespace
    grafana_url: str | None = None
    # Parsed ``alertmanager``; its namespace may still be unset (see :meth:`alertmanager_for`).
    alertmanager: AlertSettings = field(default_factory=AlertSettings)
    escalation_policies: EscalationPoliciesConfig = field(default_factory=EscalationPoliciesConfig)
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    tenant_limits: TenantLimits = field(default_factory=TenantLimits)  # parsed `detection` limits

    @property
    def intake_port(self) -> int:
        """The intake server's port: ``intake.port``, else ``alertmanager.port``."""
        return self.intake.port if self.intake.port is not None else self.alertmanager.port

    @property
    def lifecycle(self) -> LifecycleSettings:
        return LifecycleSettings(calendar=self.calendar, policy=self.deadlines, timeline_limit=self.timeline_limit,
                                 warn_at=self.warn_at)

    def alertmanager_for(self, namespaces: tuple[str, ...]) -> AlertSettings:
        """The ``alertmanager`` settings, with the incidents' namespace checked against the watched ones.

        Known only at start-up: ``--namespace`` may narrow the watched namespaces, and a single watched
        namespace is the incidents' namespace when ``alertmanager.namespace`` is not set.
        """
        try:
            settings = with_fallback_namespace(self.alertmanager, namespaces[0] if len(namespaces) == 1 else None)
        except InvalidSettings as error:
            raise ConfigError(str(error)) from None
        if settings.enabled and namespaces and settings.namespace not in namespaces:
            raise ConfigError(f"alertmanager.namespace {settings.namespace!r} is not watched by this operator "
                              f"(namespaces: {', '.join(namespaces)}); its incidents would never be reconciled")
        return settings

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "OperatorConfig":
        data = dict(data or {})
        unknown = set(data) - KNOWN_KEYS
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(sorted(KNOWN_KEYS))})")
        try:
            prom = dict(data.get("prometheus") or {})
            prometheus = PrometheusConfig(
                url=str(prom.get("url", PrometheusConfig.url)).rstrip("/"),
                bearer_token_file=prom.get("bearerTokenFile"),
                ca_file=prom.get("caFile"),
                insecure_skip_verify=bool(prom.get("insecureSkipVerify", False)),
                timeout_seconds=float(prom.get("timeoutSeconds", 10.0)),
                external_url=prom.get("externalURL"),
            )
            timeline_limit = int(data.get("timelineLimit", DEFAULT_TIMELINE_LIMIT))
            if not 1 <= timeline_limit <= 100:
                raise ConfigError("timelineLimit must be between 1 and 100 (the CRD bounds status.timeline)")
            detection = dict(data.get("detection") or {})
            metrics = dict(data.get("metrics") or {})
            # deadlines.warnAt (pre-breach warnings) belongs to the lifecycle, the rest to DeadlinePolicy.
            deadlines = dict(data.get("deadlines") or {})
            warn_at = parse_warn_at(deadlines.pop("warnAt", None))
            # A bad ``alertmanager`` block is refused at load time (the namespace is checked at start-up).
            alertmanager = parse_alertmanager_settings(data.get("alertmanager") or {}, require_namespace=False)
            intake_raw = _checked(data, "intake", ("port", "host"))
            intake_port = intake_raw.get("port")
            if intake_port is not None and (isinstance(intake_port, bool) or not isinstance(intake_port, int)
                                            or not 1 <= intake_port <= 65535):
                raise ConfigError("intake.port must be an integer between 1 and 65535")
            intake = IntakeConfig(port=intake_port, host=str(intake_raw.get("host") or IntakeConfig.host))
            return cls(
                namespaces=tuple(data.get("namespaces") or ()),
                prometheus=prometheus,
                calendar=BusinessCalendar.from_dict(data.get("calendar") or {}),
                deadlines=DeadlinePolicy.from_dict(deadlines),
                warn_at=warn_at,
                timeline_limit=timeline_limit,
                metrics_port=int(metrics.get("port", 8080)),
                new_series_delay=_new_series_delay(metrics.get("newSeriesDelay", DEFAULT_NEW_SERIES_DELAY)),
                response_objectives=parse_response_objectives(metrics.get("responseObjectives")),
                health_port=int((data.get("health") or {}).get("port", 8081)),
                max_concurrent_evaluations=int(detection.get("maxConcurrentEvaluations", 16)),
                delivery=DeliverySettings.from_dict(data.get("notifications")),
                templates_configmap=_checked(data, "templates", ("configMap", "namespace")).get("configMap"),
                templates_namespace=(data.get("templates") or {}).get("namespace"),
                grafana_url=(data.get("grafana") or {}).get("url"),
                alertmanager=alertmanager,
                escalation_policies=EscalationPoliciesConfig(
                    **{"namespace": _checked(data, "escalationPolicies", ("namespace",)).get("namespace")}),
                intake=intake,
                tenant_limits=parse_tenant_limits(detection),
            )
        except ConfigError:
            raise
        except (TypeError, ValueError) as error:
            raise ConfigError(f"invalid operator configuration: {error}") from error


def parse_response_objectives(value: Any) -> dict[str, float]:
    """``metrics.responseObjectives`` ({P2: 0.95, ...}, fractions strictly between 0 and 1) over the
    defaults; ConfigError naming what is wrong."""
    objectives = dict(DEFAULT_RESPONSE_OBJECTIVES)
    if value is None:
        return objectives
    if not isinstance(value, Mapping):
        raise ConfigError("metrics.responseObjectives must be a mapping of priority to a fraction, "
                         "e.g. {P2: 0.95}")
    for priority, fraction in value.items():
        if priority not in PRIORITIES:
            raise ConfigError(f"metrics.responseObjectives: unknown priority {priority!r} "
                             f"(known: {', '.join(PRIORITIES)})")
        if (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                or not 0 < float(fraction) < 1):
            raise ConfigError(f"metrics.responseObjectives.{priority} must be a fraction between 0 and 1 "
                             f"(exclusive), e.g. 0.95; got {fraction!r}")
        objectives[priority] = float(fraction)
    return objectives


def _new_series_delay(value: Any) -> float:
    """``metrics.newSeriesDelay`` ("90s", or seconds): keep above the Prometheus scrape interval."""
    try:
        seconds = parse_duration(value) if isinstance(value, str) else float(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"metrics.newSeriesDelay: {error}") from None
    if seconds < 0:
        raise ConfigError("metrics.newSeriesDelay must not be negative")
    return seconds


def _checked(data: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """``data[key]`` as a dict whose keys are all in ``allowed``."""
    value = data.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ConfigError(f"{key}: unknown key(s) {', '.join(unknown)} (known: {', '.join(allowed)})")
    return dict(value)


def load_config(path: str | os.PathLike | None = None) -> OperatorConfig:
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        return OperatorConfig.from_dict({})
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read configuration {path}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"configuration {path} must be a YAML mapping")
    return OperatorConfig.from_dict(data)
