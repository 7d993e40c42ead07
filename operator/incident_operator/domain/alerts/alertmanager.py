"""Alertmanager webhooks: what a notification says, and what it means for incidents. Pure: no I/O, no clock.

Three parts, used by the receiver (adapters/alertmanager_receiver.py) and the writer
(services/alerts.py):

* :func:`parse_settings` reads the ``alertmanager`` key of the operator configuration;
* :func:`parse_notification` validates a webhook body (Alertmanager ``version: "4"``; Grafana's
  Alertmanager-compatible ``version: "1"`` too) and raises :class:`InvalidNotification` with a
  message that is returned to the sender as a 400;
* :func:`plan_group` applies the mapping rules (label matchers; priority from the ``severity``
  label; service and team from labels; title and description from annotations), and the helpers
  below merge alerts into ``status.signal.alerts`` and pick the incident an alert or a ticket spike
  should join (correlation by service within a window).

See docs/alertmanager.md for the configuration keys and the decisions behind them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from ..common.durations import duration_value
from ..incident.lifecycle import DETECTED_AT_ANNOTATION, SOURCE_ANNOTATION
from ..common.timeutil import format_time_precise, parse_time, time_or_none

# Labels the operator puts on the incidents it creates.
SERVICE_LABEL = "incidents.buttercream.io/service"
ALERT_GROUP_LABEL_PREFIX = "incidents.buttercream.io/alert-group-"
SOURCE = "Alertmanager"
SIGNAL_ALERT = "Alert"
SIGNAL_TICKET_SPIKE = "TicketSpike"

DEFAULT_PORT = 8082
DEFAULT_PATH = "/webhooks/alertmanager"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
MAX_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_CORRELATION_WINDOW = "30m"
DEFAULT_RECOVERY_WINDOW = "1h"
MAX_ALERTS = 20  # the CRD bounds status.signal.alerts at 20 items
DEFAULT_PRIORITIES = {
    "critical": "P1",
    "error": "P2",
    "high": "P2",
    "warning": "P3",
    "info": "P4",
    "low": "P4",
}
PRIORITIES = ("P1", "P2", "P3", "P4")
OPEN_STATES = ("Triggered", "Acknowledged", "Investigating", "Mitigated")
SUPPORTED_VERSIONS = ("4", "1")  # Alertmanager v4; Grafana's webhook contact point sends "1"
ZERO_TIME_YEAR = 1  # Go's zero time.Time, "0001-01-01T00:00:00Z", means "not set"

MAPPING_KEYS = {
    "name", "matchers", "priority", "priorities", "defaultPriority", "severityLabel", "serviceLabel",
    "teamLabel", "titleAnnotation", "descriptionAnnotation",
}
SETTINGS_KEYS = {
    "enabled", "port", "path", "bearerTokenFile", "tokenSecretRef", "maxBodyBytes", "namespace",
    "correlationWindow", "recoveryWindow", "resolveOnResolved", "maxAlerts", "mappings",
} | (MAPPING_KEYS - {"name", "matchers", "priority"})


class InvalidNotification(ValueError):
    """The webhook body is not an Alertmanager notification; the message goes back in the 400."""


class InvalidSettings(ValueError):
    """The ``alertmanager`` configuration is wrong; the message names the key."""


# -- label matchers (Alertmanager syntax) ---------------------------------------------------------

_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$')


@dataclass(frozen=True)
class Matcher:
    """``name="value"``, ``name!="value"``, ``name=~"regex"`` or ``name!~"regex"`` (anchored, like Alertmanager)."""

    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def parse_matcher(text: str) -> Matcher:
    match = _MATCHER.match(str(text))
    if not match:
        raise InvalidSettings(f"matcher {text!r} is not of the form name=\"value\" (operators =, !=, =~, !~)")
    name, op, value = match.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as error:
            raise InvalidSettings(f"matcher {text!r}: invalid regular expression: {error}") from None
    return Matcher(name, op, value)


# -- settings -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AlertMapping:
    """Which alerts open incidents, and how their labels and annotations fill the incident."""

    name: str = "default"
    matchers: tuple[Matcher, ...] = ()
    priority: str | None = None  # fixed priority; overrides the severity table
    priorities: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    default_priority: str = "P3"
    severity_label: str = "severity"
    service_label: str = "service"
    team_label: str = "team"
    title_annotation: str = "summary"
    description_annotation: str = "description"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def priority_of(self, labels: Mapping[str, str]) -> str:
        if self.priority:
            return self.priority
        severity = str(labels.get(self.severity_label, "")).strip().lower()
        return self.priorities.get(severity, self.default_priority)


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str = "token"
    namespace: str | None = None


@dataclass(frozen=True)
class AlertSettings:
    enabled: bool = False
    port: int = DEFAULT_PORT
    path: str = DEFAULT_PATH
    bearer_token_file: str | None = None
    token_secret_ref: SecretRef | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    namespace: str | None = None
    correlation_window_s: float = 1800.0
    recovery_window_s: float = 3600.0
    resolve_on_resolved: bool = False
    max_alerts: int = MAX_ALERTS
    mappings: tuple[AlertMapping, ...] = (AlertMapping(),)

    def mapping_for(self, labels: Mapping[str, str]) -> AlertMapping | None:
        for mapping in self.mappings:
            if mapping.matches(labels):
                return mapping
        return None


def _priority(value: Any, where: str) -> str:
    text = str(value).strip().upper()
    if text not in PRIORITIES:
        raise InvalidSettings(f"{where}: {value!r} is not one of P1, P2, P3, P4")
    return text


def _duration(value: Any, where: str) -> float:
    try:
        return duration_value(value, field=where).total_seconds()
    except ValueError as error:
        raise InvalidSettings(str(error)) from None


def _label_name(value: Any, where: str) -> str:
    text = str(value or "").strip()
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", text):
        raise InvalidSettings(f"{where}: {value!r} is not a Prometheus label name")
    return text


def _mapping(raw: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> AlertMapping:
    if not isinstance(raw, Mapping):
        raise InvalidSettings(f"{where} must be a mapping")
    unknown = set(raw) - MAPPING_KEYS
    if unknown:
        raise InvalidSettings(f"{where}: unknown keys {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(sorted(MAPPING_KEYS))})")
    merged = {**defaults, **raw}
    matchers = merged.get("matchers") or []
    if isinstance(matchers, str):
        matchers = [matchers]
    if not isinstance(matchers, list):
        raise InvalidSettings(f"{where}.matchers must be a list of matchers like 'severity=~\"critical|error\"'")
    priorities = dict(DEFAULT_PRIORITIES)
    raw_priorities = merged.get("priorities") or {}
    if not isinstance(raw_priorities, Mapping):
        raise InvalidSettings(f"{where}.priorities must map severity values to P1..P4")
    for severity, priority in raw_priorities.items():
        priorities[str(severity).strip().lower()] = _priority(priority, f"{where}.priorities.{severity}")
    try:
        parsed = [parse_matcher(m) for m in matchers]
    except InvalidSettings as error:
        raise InvalidSettings(f"{where}.matchers: {error}") from None
    return AlertMapping(
        name=str(merged.get("name") or where),
        matchers=tuple(parsed),
        priority=_priority(merged["priority"], f"{where}.priority") if merged.get("priority") else None,
        priorities=priorities,
        default_priority=_priority(merged.get("defaultPriority") or "P3", f"{where}.defaultPriority"),
        severity_label=_label_name(merged.get("severityLabel") or "severity", f"{where}.severityLabel"),
        service_label=_label_name(merged.get("serviceLabel") or "service", f"{where}.serviceLabel"),
        team_label=_label_name(merged.get("teamLabel") or "team", f"{where}.teamLabel"),
        title_annotation=str(merged.get("titleAnnotation") or "summary"),
        description_annotation=str(merged.get("descriptionAnnotation") or "description"),
    )


def parse_settings(raw: Mapping[str, Any] | None, fallback_namespace: str | None = None,
                   require_namespace: bool = True) -> AlertSettings:
    """Reads the ``alertmanager`` configuration key; InvalidSettings names the offending key.

    ``fallback_namespace`` is used when ``namespace`` is not set (the operator watches one
    namespace); ``require_namespace=False`` defers that check to start-up, when the namespaces
    given on the command line are known.
    """
    raw = dict(raw or {})
    unknown = set(raw) - SETTINGS_KEYS
    if unknown:
        raise InvalidSettings(f"alertmanager: unknown keys {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(sorted(SETTINGS_KEYS))})")
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise InvalidSettings("alertmanager.enabled must be true or false")
    try:
        port = int(raw.get("port", DEFAULT_PORT))
        max_body = int(raw.get("maxBodyBytes", DEFAULT_MAX_BODY_BYTES))
        max_alerts = int(raw.get("maxAlerts", MAX_ALERTS))
    except (TypeError, ValueError) as error:
        raise InvalidSettings(f"alertmanager: {error}") from None
    if not 1 <= port <= 65535:
        raise InvalidSettings("alertmanager.port must be between 1 and 65535")
    if not 1024 <= max_body <= MAX_MAX_BODY_BYTES:
        raise InvalidSettings(f"alertmanager.maxBodyBytes must be between 1024 and {MAX_MAX_BODY_BYTES}")
    if not 1 <= max_alerts <= MAX_ALERTS:
        raise InvalidSettings(f"alertmanager.maxAlerts must be between 1 and {MAX_ALERTS} (the CRD bound)")
    path = str(raw.get("path") or DEFAULT_PATH)
    if not path.startswith("/"):
        raise InvalidSettings("alertmanager.path must start with /")

    ref = raw.get("tokenSecretRef")
    secret_ref = None
    if ref is not None:
        if not isinstance(ref, Mapping) or not ref.get("name"):
            raise InvalidSettings("alertmanager.tokenSecretRef needs a name (and optionally key, namespace)")
        secret_ref = SecretRef(name=str(ref["name"]), key=str(ref.get("key") or "token"),
                               namespace=ref.get("namespace"))
    token_file = raw.get("bearerTokenFile")
    if token_file and secret_ref:
        raise InvalidSettings("alertmanager: set bearerTokenFile or tokenSecretRef, not both")
    namespace = raw.get("namespace") or fallback_namespace
    if enabled:
        if not token_file and not secret_ref:
            raise InvalidSettings("alertmanager is enabled but has no token: set bearerTokenFile (a mounted "
                                  "Secret) or tokenSecretRef; the receiver never accepts unauthenticated posts")
        if not namespace and require_namespace:
            raise InvalidSettings("alertmanager.namespace is required (where incidents from alerts are created)")

    defaults = {k: raw[k] for k in MAPPING_KEYS & set(raw)}
    raw_mappings = raw.get("mappings")
    mappings: tuple[AlertMapping, ...]
    if raw_mappings is None:
        mappings = (_mapping({}, defaults, "alertmanager.mappings[0]"),)
    elif not isinstance(raw_mappings, list):
        raise InvalidSettings("alertmanager.mappings must be a list")
    else:
        mappings = tuple(_mapping(m, defaults, f"alertmanager.mappings[{i}]") for i, m in enumerate(raw_mappings))
    if secret_ref and not secret_ref.namespace:
        secret_ref = SecretRef(secret_ref.name, secret_ref.key, namespace)
    return AlertSettings(
        enabled=enabled, port=port, path=path, bearer_token_file=token_file, token_secret_ref=secret_ref,
        max_body_bytes=max_body, namespace=namespace,
        correlation_window_s=_duration(raw.get("correlationWindow", DEFAULT_CORRELATION_WINDOW),
                                       "alertmanager.correlationWindow"),
        recovery_window_s=_duration(raw.get("recoveryWindow", DEFAULT_RECOVERY_WINDOW), "alertmanager.recoveryWindow"),
        resolve_on_resolved=bool(raw.get("resolveOnResolved", False)),
        max_alerts=max_alerts, mappings=mappings,
    )


# -- the webhook payload --------------------------------------------------------------------------

@dataclass(frozen=True)
class Alert:
    status: str  # firing | resolved
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str = ""
    generator_url: str = ""

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def firing(self) -> bool:
        return self.status == "firing"


@dataclass(frozen=True)
class Notification:
    version: str
    group_key: str
    status: str  # firing | resolved (resolved only when every alert of the group is)
    receiver: str
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    common_annotations: Mapping[str, str]
    external_url: str
    alerts: tuple[Alert, ...]
    truncated_alerts: int = 0


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidNotification(f"{where} must be an object of strings")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise InvalidNotification(f"{where} must be an object of strings (bad entry {key!r})")
        out[key] = item
    return out


def _required_time(value: Any, where: str) -> datetime:
    moment = _time(value, where, required=True)
    if moment is None:  # _time raises for a missing required time; this keeps the type honest
        raise InvalidNotification(f"{where} is required (RFC 3339)")
    return moment


def _time(value: Any, where: str, required: bool) -> datetime | None:
    if value in (None, ""):
        if required:
            raise InvalidNotification(f"{where} is required (RFC 3339)")
        return None
    if not isinstance(value, str):
        raise InvalidNotification(f"{where} must be an RFC 3339 string")
    text = value.strip()
    try:
        moment = parse_time(text)
    except ValueError as error:
        raise InvalidNotification(f"{where}: {error}") from None
    if moment is None or moment.year <= ZERO_TIME_YEAR:
        if required:
            raise InvalidNotification(f"{where} is required (RFC 3339)")
        return None
    return moment


def parse_notification(data: Any) -> Notification:
    """Validates a decoded webhook body; raises InvalidNotification saying what is wrong."""
    if not isinstance(data, Mapping):
        raise InvalidNotification("the body must be a JSON object (an Alertmanager webhook notification)")
    version = data.get("version")
    if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
        raise InvalidNotification(f"version must be \"4\" (Alertmanager webhook), got {version!r}")
    group_key = data.get("groupKey")
    if not isinstance(group_key, str) or not group_key:
        raise InvalidNotification("groupKey is required (a non-empty string)")
    status = data.get("status")
    if status not in ("firing", "resolved"):
        raise InvalidNotification(f"status must be firing or resolved, got {status!r}")
    raw_alerts = data.get("alerts")
    if not isinstance(raw_alerts, list):
        raise InvalidNotification("alerts must be a list")
    alerts = []
    for index, raw in enumerate(raw_alerts):
        where = f"alerts[{index}]"
        if not isinstance(raw, Mapping):
            raise InvalidNotification(f"{where} must be an object")
        alert_status = raw.get("status")
        if alert_status not in ("firing", "resolved"):
            raise InvalidNotification(f"{where}.status must be firing or resolved, got {alert_status!r}")
        labels = _string_map(raw.get("labels"), f"{where}.labels")
        fingerprint = raw.get("fingerprint") or ""
        generator = raw.get("generatorURL") or ""
        if not isinstance(fingerprint, str) or not isinstance(generator, str):
            raise InvalidNotification(f"{where}.fingerprint and generatorURL must be strings")
        alerts.append(Alert(
            status=alert_status, labels=labels,
            annotations=_string_map(raw.get("annotations"), f"{where}.annotations"),
            starts_at=_required_time(raw.get("startsAt"), f"{where}.startsAt"),
            ends_at=_time(raw.get("endsAt"), f"{where}.endsAt", required=False),
            fingerprint=fingerprint, generator_url=generator,
        ))
    truncated = data.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise InvalidNotification("truncatedAlerts must be a non-negative integer")
    receiver = data.get("receiver") or ""
    external = data.get("externalURL") or ""
    if not isinstance(receiver, str) or not isinstance(external, str):
        raise InvalidNotification("receiver and externalURL must be strings")
    return Notification(
        version=version, group_key=group_key, status=status, receiver=receiver,
        group_labels=_string_map(data.get("groupLabels"), "groupLabels"),
        common_labels=_string_map(data.get("commonLabels"), "commonLabels"),
        common_annotations=_string_map(data.get("commonAnnotations"), "commonAnnotations"),
        external_url=external, alerts=tuple(alerts), truncated_alerts=truncated,
    )


# -- identities -----------------------------------------------------------------------------------

def group_hash(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()[:12]


def group_label(group_key: str) -> str:
    """The label key marking every incident that holds alerts of this group (value "true")."""
    return ALERT_GROUP_LABEL_PREFIX + group_hash(group_key)


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out, number = "", max(int(number), 0)
    while True:
        number, remainder = divmod(number, 36)
        out = digits[remainder] + out
        if number == 0:
            return out


def incident_name(group_key: str, episode_start: datetime | None = None) -> str:
    """``am-<hash of groupKey>``; a later episode (after a Closed one) adds its start time."""
    name = f"am-{group_hash(group_key)}"
    return name if episode_start is None else f"{name}-{_base36(int(episode_start.timestamp()))}"


def label_safe(value: str) -> str:
    """A label value and an Incident ``spec.service``/``spec.team`` (lower-case DNS-ish, <= 63)."""
    cleaned = re.sub(r"[^a-z0-9_.-]", "-", str(value).lower()).strip("-._")[:63]
    return cleaned.strip("-._")


# -- one notification -> one group plan ---------------------------------------------------------------

@dataclass(frozen=True)
class GroupPlan:
    """What a notification means once the mapping rules are applied."""

    group_key: str
    status: str
    alerts: tuple[Alert, ...]  # the alerts some mapping selects (others are ignored)
    priority: str
    service: str | None
    team: str | None
    title: str
    description: str
    links: tuple[dict[str, str], ...]

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.firing)

    @property
    def earliest(self) -> datetime:
        """The earliest start among firing alerts (all alerts when none fires)."""
        pool = self.firing or self.alerts
        return min(a.starts_at for a in pool)


def plan_group(notification: Notification, settings: AlertSettings) -> GroupPlan | None:
    """Applies the mapping rules; None when no alert of the group is selected by any mapping."""
    selected: list[tuple[Alert, AlertMapping]] = []
    for alert in notification.alerts:
        mapping = settings.mapping_for(alert.labels)
        if mapping is not None:
            selected.append((alert, mapping))
    if not selected:
        return None
    firing = [pair for pair in selected if pair[0].firing] or selected
    firing.sort(key=lambda pair: (pair[0].starts_at, pair[0].alertname))
    priority = min((m.priority_of(a.labels) for a, m in firing), key=PRIORITIES.index)
    lead, lead_mapping = firing[0]

    def label_of(attribute: str) -> str | None:
        for alert, mapping in firing:
            name = getattr(mapping, attribute)
            value = notification.common_labels.get(name) or alert.labels.get(name)
            if value and label_safe(value):
                return label_safe(value)
        return None

    def annotation(alert: Alert, name: str) -> str:
        return alert.annotations.get(name) or notification.common_annotations.get(name) or ""

    title = annotation(lead, lead_mapping.title_annotation) or (
        f"{lead.alertname or 'Alert'} firing" + (f" on {label_of('service_label')}" if label_of("service_label") else ""))
    description = annotation(lead, lead_mapping.description_annotation)
    if len(firing) > 1:
        others = sorted({a.alertname for a, _ in firing[1:] if a.alertname and a.alertname != lead.alertname})
        extra = f"{len(firing)} alerts in this group" + (f" (also: {', '.join(others)})" if others else "")
        description = f"{description}\n\n{extra}".strip()
    links: list[dict[str, str]] = []
    for alert, _ in firing:
        for title_, url in ((f"{alert.alertname or 'Alert'} in Prometheus", alert.generator_url),
                            ("Runbook", alert.annotations.get("runbook_url", ""))):
            if url.startswith(("http://", "https://")) and len(url) <= 2048 and all(link["url"] != url for link in links):
                links.append({"title": title_[:200], "url": url})
    return GroupPlan(
        group_key=notification.group_key, status=notification.status,
        alerts=tuple(a for a, _ in selected), priority=priority,
        service=label_of("service_label"), team=label_of("team_label"),
        title=" ".join(title.split())[:200], description=description[:10000], links=tuple(links[:20]),
    )


# -- status.signal.alerts -----------------------------------------------------------------------------

def _entry_key(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(entry.get("groupKey") or ""), str(entry.get("alertname") or ""), str(entry.get("startsAt") or ""))


def alert_entry(group_key: str, alert: Alert) -> dict[str, Any]:
    # Millisecond precision, as Alertmanager keeps it: a re-fire within the same second is still new.
    entry = {"groupKey": group_key[:1000], "alertname": alert.alertname, "status": alert.status,
             "startsAt": format_time_precise(alert.starts_at)}
    if not alert.firing and alert.ends_at is not None:
        entry["endsAt"] = format_time_precise(alert.ends_at)
    return entry


@dataclass
class AlertChanges:
    alerts: list[dict[str, Any]]
    new_firing: list[dict[str, Any]] = field(default_factory=list)  # alerts not known to be firing before
    resolved: list[dict[str, Any]] = field(default_factory=list)  # alerts that went firing -> resolved

    @property
    def changed(self) -> bool:
        return bool(self.new_firing or self.resolved)


def merge_alerts(existing: Sequence[Mapping[str, Any]] | None, plan: GroupPlan, limit: int = MAX_ALERTS) -> AlertChanges:
    """Records the group's alerts in ``status.signal.alerts``; idempotent for repeat notifications.

    Entries are keyed by (groupKey, alertname, startsAt): a repeat notification changes nothing,
    a re-fired alert (new startsAt) is a new entry. Bounded: resolved entries are dropped first,
    then the oldest.
    """
    entries = [dict(e) for e in existing or []]
    by_key = {_entry_key(e): e for e in entries}
    changes = AlertChanges(alerts=entries)
    # Two alerts of one group with the same name and start (e.g. one per instance) share an entry,
    # which is firing while any of them is.
    fresh: dict[tuple[str, str, str], dict[str, Any]] = {}
    for alert in plan.alerts:
        entry = alert_entry(plan.group_key, alert)
        key = _entry_key(entry)
        if key in fresh and fresh[key]["status"] == "firing":
            continue
        fresh[key] = entry
    for key, entry in fresh.items():
        old = by_key.get(key)
        if old is None:
            entries.append(entry)
            by_key[key] = entry
            if entry["status"] == "firing":
                changes.new_firing.append(entry)
            continue
        # Only firing -> resolved: a firing for an entry already resolved is a stale delivery (an HA
        # peer lagging behind); a real re-fire comes with a new startsAt, hence a new entry.
        if old.get("status") == entry["status"] or entry["status"] == "firing":
            continue
        changes.resolved.append(entry)
        old.clear()
        old.update(entry)
    if len(entries) > limit:
        drop = len(entries) - limit
        resolved_idx = [i for i, e in enumerate(entries) if e.get("status") != "firing"]
        victims = set(resolved_idx[:drop])
        if len(victims) < drop:
            rest = [i for i in range(len(entries)) if i not in victims]
            victims |= set(rest[:drop - len(victims)])
        entries = [e for i, e in enumerate(entries) if i not in victims]
    changes.alerts = entries
    return changes


def all_alerts_resolved(alerts: Iterable[Mapping[str, Any]]) -> bool:
    alerts = list(alerts)
    return bool(alerts) and all(a.get("status") == "resolved" for a in alerts)


def earliest_alert_start(alerts: Iterable[Mapping[str, Any]]) -> datetime | None:
    times = [t for t in (time_or_none(a.get("startsAt")) for a in alerts) if t is not None]
    return min(times) if times else None


# -- correlation ------------------------------------------------------------------------------------



def detected_time(incident: Mapping[str, Any]) -> datetime | None:
    """When an incident was detected: the earlier of status.detectedAt and the annotation, else creation."""
    metadata = incident.get("metadata") or {}
    status = incident.get("status") or {}
    candidates = [time_or_none(status.get("detectedAt")),
                  time_or_none((metadata.get("annotations") or {}).get(DETECTED_AT_ANNOTATION))]
    found = [c for c in candidates if c is not None]
    if found:
        return min(found)
    return time_or_none(metadata.get("creationTimestamp"))


def is_open(incident: Mapping[str, Any]) -> bool:
    return ((incident.get("spec") or {}).get("state") or "Triggered") in OPEN_STATES


def has_ticket_spike(incident: Mapping[str, Any]) -> bool:
    return bool(((incident.get("status") or {}).get("signal") or {}).get("rule"))


def has_alerts(incident: Mapping[str, Any]) -> bool:
    signal = (incident.get("status") or {}).get("signal") or {}
    source = (incident.get("status") or {}).get("source") or \
        ((incident.get("metadata") or {}).get("annotations") or {}).get(SOURCE_ANNOTATION)
    return bool(signal.get("alerts")) or source == SOURCE


def within_window(incident: Mapping[str, Any], moment: datetime, window_s: float) -> bool:
    detected = detected_time(incident)
    return detected is not None and abs((detected - moment).total_seconds()) <= window_s


def pick_for_alert(incidents: Sequence[Mapping[str, Any]], service: str, moment: datetime,
                   window_s: float) -> Mapping[str, Any] | None:
    """The open incident of ``service`` an alert starting at ``moment`` joins (the earliest detected)."""
    if window_s <= 0:
        return None
    candidates = [i for i in incidents
                  if ((i.get("metadata") or {}).get("labels") or {}).get(SERVICE_LABEL) == service
                  and is_open(i) and within_window(i, moment, window_s)]
    candidates.sort(key=lambda i: (detected_time(i), i["metadata"]["name"]))
    return candidates[0] if candidates else None


def pick_for_spike(incidents: Sequence[Mapping[str, Any]], service: str, moment: datetime, window_s: float,
                   fingerprint: str) -> Mapping[str, Any] | None:
    """The open *alert* incident of ``service`` a ticket spike detected at ``moment`` joins.

    Only incidents that carry alerts and no other rule's spike: ``status.signal`` holds one
    rule's evidence, so a second rule's spike opens its own incident instead of overwriting it.
    """
    if window_s <= 0:
        return None
    candidates = []
    for incident in incidents:
        signal = (incident.get("status") or {}).get("signal") or {}
        if ((incident.get("metadata") or {}).get("labels") or {}).get(SERVICE_LABEL) != service:
            continue
        if not is_open(incident) or not has_alerts(incident) or not within_window(incident, moment, window_s):
            continue
        if signal.get("fingerprint") and signal.get("fingerprint") != fingerprint:
            continue
        candidates.append(incident)
    candidates.sort(key=lambda i: (detected_time(i), i["metadata"]["name"]))
    return candidates[0] if candidates else None


def derive_first_signal(signal: Mapping[str, Any]) -> str | None:
    """``status.signal.firstSignal`` from the evidence itself, so any write order gives the same answer.

    The ticket spike began at ``signal.firstSeen`` (when its rule first saw the condition); an
    alert at its ``startsAt``.
    """
    spike_at = time_or_none(signal.get("firstSeen")) if signal.get("rule") else None
    return first_signal(spike_at, earliest_alert_start(signal.get("alerts") or []))


def first_signal(spike_at: datetime | None, alert_at: datetime | None) -> str | None:
    """Which signal came first; a tie goes to the ticket spike (the support team's own signal)."""
    if spike_at is None and alert_at is None:
        return None
    if alert_at is None:
        return SIGNAL_TICKET_SPIKE
    if spike_at is None:
        return SIGNAL_ALERT
    return SIGNAL_ALERT if alert_at < spike_at else SIGNAL_TICKET_SPIKE


def earlier(current: datetime | None, candidate: datetime | None) -> datetime | None:
    """``candidate`` when it is earlier than ``current`` (or current is unknown); else None."""
    if candidate is None:
        return None
    if current is None or candidate < current:
        return candidate
    return None


def stale_resolution(incident: Mapping[str, Any], now: datetime, recovery_window_s: float) -> bool:
    """A Resolved incident past its recovery window: a new firing opens a new incident instead."""
    spec_state = (incident.get("spec") or {}).get("state")
    if spec_state != "Resolved":
        return False
    resolved = time_or_none((incident.get("status") or {}).get("resolvedAt"))
    return resolved is not None and now - resolved > timedelta(seconds=recovery_window_s)
