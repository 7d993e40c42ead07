"""The hand-off packet: everything the next responder needs, built from the incident alone.

Pure: :func:`build_packet` takes the Incident object, the pending notification, the policy
level it goes to and ``now``; :func:`render_message` turns the packet into a title and a
Markdown body for Apprise (Slack, Teams, e-mail, ...). JSON-speaking targets also get the
packet itself (see adapters/notify.py). No secret (channel URL) ever enters a packet.

Event names follow PagerDuty webhook v3 (``incident.triggered``, ``incident.escalated``, ...).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from ..common.durations import format_age
from ..common.timeutil import format_time, time_or_none

SCHEMA = "incidents.buttercream.io/handoff/v1"
MAX_ACCOUNTS = 50
MAX_DESCRIPTION = 2000

VERBS = {
    "incident.triggered": "Opened",
    "incident.acknowledged": "Acknowledged",
    "incident.investigating": "Investigating",
    "incident.mitigated": "Mitigated",
    "incident.resolved": "Resolved",
    "incident.closed": "Closed",
    "incident.reopened": "Reopened",
    "incident.escalated": "Escalated",
    "incident.priority_updated": "Priority changed",
}
# Apprise notify types: info, success, warning, failure.
NOTIFY_TYPES = {
    "incident.triggered": "warning",
    "incident.escalated": "failure",
    "incident.reopened": "failure",
    "incident.priority_updated": "warning",
    "incident.mitigated": "success",
    "incident.resolved": "success",
    "incident.closed": "success",
}
SIGNAL_FIELDS = ("rule", "query", "fingerprint", "groupLabels", "value", "baseline", "threshold", "peak",
                 "firstSeen", "lastSeen", "graphURL", "previousIncident", "alerts", "firstSignal")


def build_packet(incident: Mapping[str, Any], notification: Mapping[str, Any], now: datetime, *,
                 policy: str | None = None, policy_level: int | None = None, level_name: str | None = None,
                 timeline_entries: int = 10) -> dict[str, Any]:
    """The structured hand-off for one notification (JSON-serialisable)."""
    metadata = incident.get("metadata") or {}
    spec = incident.get("spec") or {}
    status = incident.get("status") or {}
    event = str(notification.get("event") or "")
    key = str(notification.get("key") or "")
    impact = spec.get("customerImpact") or {}
    accounts = list(impact.get("affectedAccounts") or [])
    signal = status.get("signal") or None
    escalation = status.get("escalation") or {}

    links = [{"title": link.get("title") or link.get("url"), "url": link["url"]}
             for link in spec.get("links") or [] if link.get("url")]
    if signal and signal.get("graphURL"):
        links.append({"title": "Detection signal graph", "url": signal["graphURL"]})

    return {
        "schema": SCHEMA,
        "type": event,
        "key": key,
        "dedupKey": f"{metadata.get('uid') or metadata.get('namespace', '')}/{key}",
        "sentAt": format_time(now),
        "incident": {
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "uid": metadata.get("uid"),
            "title": spec.get("title"),
            "description": _clip(spec.get("description"), MAX_DESCRIPTION),
            "service": spec.get("service"),
            "team": spec.get("team"),
            "priority": status.get("priority") or spec.get("priority"),
            "severity": status.get("severity"),
            "state": status.get("state") or spec.get("state") or "Triggered",
            "owner": spec.get("owner"),
            "commander": spec.get("commander"),
            "source": status.get("source"),
            "startedAt": status.get("startedAt"),
            "detectedAt": status.get("detectedAt"),
            "acknowledgedAt": status.get("acknowledgedAt"),
            "mitigatedAt": status.get("mitigatedAt"),
            "resolvedAt": status.get("resolvedAt"),
            "reopenCount": int(status.get("reopenCount") or 0),
        },
        "escalation": {
            "level": int(notification.get("level") or escalation.get("level") or 0),
            "currentLevel": int(escalation.get("level") or 0),
            "nextEscalationAt": escalation.get("nextEscalationAt"),
            "policy": policy,
            "policyLevel": policy_level,
            "target": level_name,
        },
        "deadline": _deadline(status, now),
        "evidence": {k: signal[k] for k in SIGNAL_FIELDS if k in signal} if signal else None,
        "impact": {
            "summary": impact.get("summary"),
            "affectedAccounts": accounts[:MAX_ACCOUNTS],
            "affectedAccountCount": len(accounts),
            "ticketCount": impact.get("ticketCount"),
        },
        "workaround": spec.get("workaround"),
        "timeline": list((status.get("timeline") or [])[-timeline_entries:]) if timeline_entries else [],
        "links": links,
    }


def _deadline(status: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    deadline = time_or_none(status.get("responseDeadline"))
    acknowledged = bool(status.get("acknowledgedAt"))
    result: dict[str, Any] = {
        "responseDeadline": status.get("responseDeadline"),
        "resolutionTarget": status.get("resolutionTarget"),
        "acknowledged": acknowledged,
        "timeLeftSeconds": None,
        "timeLeft": None,
    }
    if deadline is not None:
        left = (deadline - now).total_seconds()
        result["timeLeftSeconds"] = int(left)
        if acknowledged:
            result["timeLeft"] = "acknowledged"
        elif left >= 0:
            result["timeLeft"] = f"{format_age(left)} left"
        else:
            result["timeLeft"] = f"overdue by {format_age(-left)}"
    return result


def notify_type(packet: Mapping[str, Any]) -> str:
    return NOTIFY_TYPES.get(str(packet.get("type")), "info")


def render_title(packet: Mapping[str, Any]) -> str:
    incident = packet.get("incident") or {}
    event = str(packet.get("type") or "")
    verb = VERBS.get(event, event)
    if event == "incident.escalated":
        verb = f"Escalated to level {(packet.get('escalation') or {}).get('level')}"
    elif event == "incident.acknowledged" and incident.get("owner"):
        verb = f"Acknowledged by {incident['owner']}"
    service = f" ({incident['service']})" if incident.get("service") else ""
    return _one_line(f"[{incident.get('priority') or '?'}] {verb}: {incident.get('title') or incident.get('name')}"
                     f"{service}", 250)


def render_markdown(packet: Mapping[str, Any]) -> str:
    """The packet as a Markdown message body, most important first."""
    incident = packet.get("incident") or {}
    escalation = packet.get("escalation") or {}
    deadline = packet.get("deadline") or {}
    lines: list[str] = []
    ref = f"`{incident.get('namespace')}/{incident.get('name')}`"
    head = (f"**{incident.get('priority') or '?'} · {incident.get('severity') or '?'}** incident {ref} is "
            f"**{incident.get('state')}**")
    if packet.get("type") == "incident.escalated":
        target = f" ({escalation['target']})" if escalation.get("target") else ""
        head += f", escalated to level {escalation.get('level')}{target}"
    lines.append(head + ".")
    if deadline.get("responseDeadline"):
        left = f" ({deadline['timeLeft']})" if deadline.get("timeLeft") else ""
        lines.append(f"- **Response deadline:** {deadline['responseDeadline']}{left}")
    if deadline.get("resolutionTarget"):
        lines.append(f"- **Resolution target:** {deadline['resolutionTarget']}")
    people = [f"**Owner:** {incident.get('owner') or 'unassigned'}"]
    if incident.get("commander"):
        people.append(f"**Commander:** {incident['commander']}")
    lines.append("- " + " · ".join(people))
    where = []
    if incident.get("service"):
        where.append(f"**Service:** {incident['service']}")
    if incident.get("team"):
        where.append(f"**Team:** {incident['team']}")
    if incident.get("startedAt"):
        where.append(f"**Impact since:** {incident['startedAt']}")
    if where:
        lines.append("- " + " · ".join(where))
    if incident.get("description"):
        lines += ["", _clip(incident["description"], 600) or ""]

    evidence = packet.get("evidence")
    if evidence:
        lines += ["", "**Detection evidence**"]
        if evidence.get("rule"):
            lines.append(f"- Rule: {evidence['rule']}")
        if evidence.get("query"):
            lines.append(f"- Query: `{_one_line(evidence['query'], 300)}`")
        numbers = [f"{name} {_number(evidence[name])}" for name in ("value", "baseline", "threshold", "peak")
                   if evidence.get(name) is not None]
        if numbers:
            lines.append("- " + ", ".join(numbers))
        if evidence.get("groupLabels"):
            labels = ", ".join(f"{k}={v}" for k, v in sorted(evidence["groupLabels"].items()))
            lines.append(f"- Group: {labels}")
        if evidence.get("firstSeen"):
            lines.append(f"- Seen since {evidence['firstSeen']}" +
                         (f", last {evidence['lastSeen']}" if evidence.get("lastSeen") else ""))
        if evidence.get("previousIncident"):
            lines.append(f"- Recurrence of {evidence['previousIncident']}")

    impact = packet.get("impact") or {}
    if impact.get("summary") or impact.get("affectedAccountCount") or impact.get("ticketCount") is not None:
        lines += ["", "**Customer impact**"]
        if impact.get("summary"):
            lines.append(f"- {_one_line(impact['summary'], 600)}")
        if impact.get("affectedAccountCount"):
            shown = ", ".join(impact.get("affectedAccounts") or [])
            more = impact["affectedAccountCount"] - len(impact.get("affectedAccounts") or [])
            lines.append(f"- Affected accounts ({impact['affectedAccountCount']}): {shown}"
                         + (f" and {more} more" if more > 0 else ""))
        if impact.get("ticketCount") is not None:
            lines.append(f"- Support tickets: {impact['ticketCount']}")
    if packet.get("workaround"):
        lines += ["", f"**Workaround:** {_one_line(packet['workaround'], 600)}"]

    timeline = packet.get("timeline") or []
    if timeline:
        lines += ["", "**Latest timeline**"]
        for entry in timeline:
            lines.append(f"- {entry.get('time')} {entry.get('type')}: {_one_line(entry.get('message') or '', 300)}")
    links = packet.get("links") or []
    if links:
        lines += ["", "**Links**"]
        lines += [f"- [{_one_line(link['title'], 200)}]({link['url']})" for link in links]
    lines += ["", f"_{packet.get('type')} · {packet.get('dedupKey')}_"]
    return "\n".join(lines)


def render_message(packet: Mapping[str, Any]) -> tuple[str, str]:
    """(title, Markdown body) for Apprise."""
    return render_title(packet), render_markdown(packet)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _one_line(text: Any, limit: int) -> str:
    return _clip(" ".join(str(text).split()), limit) or ""


def _clip(value: object, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


