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

from .domain.incident.calendar import BusinessCalendar
from .domain.incident.deadlines import DeadlinePolicy
from .domain.incident.lifecycle import DEFAULT_WARN_AT, LifecycleSettings, parse_warn_at
from .domain.notify.book import DeliverySettings
from .domain.incident.timeline import DEFAULT_TIMELINE_LIMIT

CONFIG_ENV = "INCIDENT_OPERATOR_CONFIG"
KNOWN_KEYS = {
    "namespaces", "prometheus", "calendar", "deadlines", "timelineLimit", "metrics", "health",
    "detection", "notifications", "templates", "grafana", "alertmanager", "escalationPolicies",
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
class OperatorConfig:
    namespaces: tuple[str, ...] = ()
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    calendar: BusinessCalendar = field(default_factory=lambda: BusinessCalendar.from_dict({}))
    deadlines: DeadlinePolicy = field(default_factory=lambda: DeadlinePolicy.from_dict({}))
    warn_at: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: DEFAULT_WARN_AT)  # deadlines.warnAt
    timeline_limit: int = DEFAULT_TIMELINE_LIMIT
    metrics_port: int = 8080
    health_port: int = 8081
    max_concurrent_evaluations: int = 16
    notifications: Mapping[str, Any] = field(default_factory=dict)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)  # parsed `notifications`
    templates_configmap: str | None = None
    templates_namespace: str | None = None  # where templates.configMap is looked up after the incident's namespace
    grafana_url: str | None = None
    alertmanager: Mapping[str, Any] = field(default_factory=dict)
    escalation_policies: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def lifecycle(self) -> LifecycleSettings:
        return LifecycleSettings(calendar=self.calendar, policy=self.deadlines, timeline_limit=self.timeline_limit,
                                 warn_at=self.warn_at)

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
            # deadlines.warnAt (pre-breach warnings) belongs to the lifecycle, the rest to DeadlinePolicy.
            deadlines = dict(data.get("deadlines") or {})
            warn_at = parse_warn_at(deadlines.pop("warnAt", None))
            # Refuse a bad ``alertmanager`` block at load time (the namespace is checked at start-up).
            from .domain.alerts.alertmanager import parse_settings as parse_alertmanager_settings

            parse_alertmanager_settings(data.get("alertmanager") or {}, require_namespace=False)
            return cls(
                namespaces=tuple(data.get("namespaces") or ()),
                prometheus=prometheus,
                calendar=BusinessCalendar.from_dict(data.get("calendar") or {}),
                deadlines=DeadlinePolicy.from_dict(deadlines),
                warn_at=warn_at,
                timeline_limit=timeline_limit,
                metrics_port=int((data.get("metrics") or {}).get("port", 8080)),
                health_port=int((data.get("health") or {}).get("port", 8081)),
                max_concurrent_evaluations=int(detection.get("maxConcurrentEvaluations", 16)),
                notifications=dict(data.get("notifications") or {}),
                delivery=DeliverySettings.from_dict(data.get("notifications")),
                templates_configmap=_checked(data, "templates", ("configMap", "namespace")).get("configMap"),
                templates_namespace=(data.get("templates") or {}).get("namespace"),
                grafana_url=(data.get("grafana") or {}).get("url"),
                alertmanager=dict(data.get("alertmanager") or {}),
                escalation_policies=_checked(data, "escalationPolicies", ("namespace",)),
                raw=data,
            )
        except ConfigError:
            raise
        except (TypeError, ValueError) as error:
            raise ConfigError(f"invalid operator configuration: {error}") from error


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
