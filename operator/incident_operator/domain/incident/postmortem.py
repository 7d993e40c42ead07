"""The post-incident review document: Markdown built from the Incident alone (pure).

It puts together what the operator recorded (timestamps, the bounded timeline, escalations,
notifications, the detection evidence) and what people wrote in ``spec.review``. Durations
follow the Rootly formulas (docs/references): each is measured from when impact started:

    time to detect      = detectedAt     - startedAt
    time to acknowledge = acknowledgedAt - startedAt
    time to mitigate    = mitigatedAt    - startedAt
    time to resolve     = resolvedAt     - startedAt
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping

from .priority import effective_priority, severity_of
from .review import review_missing, review_required
from ..common.timeutil import time_or_none

MEASURES = (
    ("Time to detect", "detectedAt"),
    ("Time to acknowledge", "acknowledgedAt"),
    ("Time to mitigate", "mitigatedAt"),
    ("Time to resolve", "resolvedAt"),
)
MILESTONES = (
    ("Impact started", "startedAt"),
    ("Detected", "detectedAt"),
    ("Acknowledged", "acknowledgedAt"),
    ("Investigating", "investigatingAt"),
    ("Mitigated", "mitigatedAt"),
    ("Resolved", "resolvedAt"),
    ("Closed", "closedAt"),
)




def format_span(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    if minutes or hours or days:
        parts.append(f"{minutes}m")
    if not days:
        parts.append(f"{seconds}s")
    return sign + " ".join(parts)


def durations(status: Mapping[str, Any]) -> dict[str, timedelta | None]:
    """Rootly-style durations from impact start; None when a milestone is missing."""
    started = time_or_none(status.get("startedAt"))
    result: dict[str, timedelta | None] = {}
    for label, stamp in MEASURES:
        moment = time_or_none(status.get(stamp))
        result[label] = moment - started if moment and started else None
    return result


def _priority(spec: Mapping[str, Any]) -> str | None:
    try:
        return effective_priority(spec.get("priority"), spec.get("impact"), spec.get("urgency"))
    except ValueError:
        return None


def _severity(priority: str) -> str:
    try:
        return severity_of(priority)
    except (KeyError, ValueError):
        return "?"


def _cell(value: Any) -> str:
    text = " ".join(str(value if value is not None else "").split())
    return text.replace("|", "\\|") or "—"


def _block(text: Any) -> str:
    return str(text).strip() if text and str(text).strip() else "_Not written yet._"


def auto_timeline(status: Mapping[str, Any]) -> list[tuple[datetime, str, str]]:
    """(time, what, detail) from the milestones and status.timeline, oldest first, no duplicates."""
    rows: list[tuple[datetime, str, str]] = []
    timeline = list(status.get("timeline") or [])
    recorded_types = {entry.get("type") for entry in timeline}
    for label, stamp in MILESTONES:
        moment = time_or_none(status.get(stamp))
        if moment is None:
            continue
        if label == "Detected" and "Detected" in recorded_types:
            continue  # the timeline's own entry says more
        rows.append((moment, label, "milestone"))
    for entry in timeline:
        moment = time_or_none(entry.get("time"))
        if moment is None:
            continue
        actor = entry.get("actor")
        detail = entry.get("message") or ""
        if actor and actor != "incident-operator":
            detail += f" ({actor})"
        rows.append((moment, entry.get("type") or "", detail))
    rows.sort(key=lambda row: row[0])
    return rows


def build_postmortem(incident: Mapping[str, Any], now: datetime) -> str:
    """The post-mortem as Markdown."""
    metadata = incident.get("metadata") or {}
    spec = incident.get("spec") or {}
    status = incident.get("status") or {}
    review = spec.get("review") or {}
    priority = status.get("priority") or _priority(spec) or "?"
    state = status.get("state") or spec.get("state") or "Triggered"
    out: list[str] = [f"# Post-incident review: {spec.get('title') or metadata.get('name')}", ""]

    missing = review_missing(review)
    if missing:
        need = "required before it can be Closed" if review_required(priority) else "optional for " + priority
        out += [f"> **Review incomplete** ({need}); missing: {', '.join(missing)}.", ""]

    out += ["| | |", "|---|---|"]
    rows = [
        ("Incident", f"`{'/'.join(p for p in (metadata.get('namespace'), metadata.get('name')) if p)}`"),
        ("Priority / severity", f"{priority} / {status.get('severity') or _severity(priority)}"),
        ("State", state + (f" (reopened {status['reopenCount']}x)" if status.get("reopenCount") else "")),
        ("Service", spec.get("service")),
        ("Team", spec.get("team")),
        ("Owner", spec.get("owner")),
        ("Commander", spec.get("commander")),
        ("Source", status.get("source")),
        ("Highest escalation level", (status.get("escalation") or {}).get("level", 0)),
    ]
    out += [f"| {label} | {_cell(value)} |" for label, value in rows]
    out.append("")

    out += ["## Summary", ""]
    if spec.get("description"):
        out += [str(spec["description"]).strip(), ""]
    impact = spec.get("customerImpact") or {}
    if impact.get("summary"):
        out.append(f"- **Customer impact:** {' '.join(str(impact['summary']).split())}")
    accounts = impact.get("affectedAccounts") or []
    if accounts:
        out.append(f"- **Affected accounts ({len(accounts)}):** {', '.join(accounts[:50])}"
                   + (" …" if len(accounts) > 50 else ""))
    if impact.get("ticketCount") is not None:
        out.append(f"- **Support tickets:** {impact['ticketCount']}")
    if spec.get("workaround"):
        out.append(f"- **Workaround:** {' '.join(str(spec['workaround']).split())}")
    if spec.get("resolution"):
        out.append(f"- **Resolution:** {' '.join(str(spec['resolution']).split())}")
    csat = spec.get("csat") or {}
    if csat.get("score") is not None:
        out.append(f"- **CSAT during the incident:** {csat['score']}/5"
                   + (f" ({csat['responses']} responses)" if csat.get("responses") is not None else ""))
    out.append("")

    out += ["## Key measures", "", "| Measure | Duration | Formula |", "|---|---|---|"]
    spans = durations(status)
    for label, stamp in MEASURES:
        out.append(f"| {label} | {format_span(spans[label])} | {stamp} − startedAt |")
    if not status.get("resolvedAt") and state not in ("Resolved", "Closed"):
        started = time_or_none(status.get("startedAt"))
        if started:
            out.append(f"| Open for | {format_span(now - started)} | now − startedAt |")
    on_time = next((c for c in status.get("conditions") or [] if c.get("type") == "ResponseOnTime"), None)
    if on_time:
        out += ["", f"Response deadline {status.get('responseDeadline') or '?'}: {on_time.get('message')}."]
    out.append("")

    signal = status.get("signal") or {}
    if signal:
        out += ["## Detection", ""]
        for label, key in (("Rule", "rule"), ("Query", "query"), ("Value", "value"), ("Baseline", "baseline"),
                           ("Threshold", "threshold"), ("Peak", "peak"), ("First seen", "firstSeen"),
                           ("First signal", "firstSignal"), ("Previous incident", "previousIncident"),
                           ("Graph", "graphURL")):
            if signal.get(key) is not None:
                value = f"`{signal[key]}`" if key == "query" else signal[key]
                out.append(f"- **{label}:** {value}")
        out.append("")

    out += ["## Timeline", "", "| Time (UTC) | Event | Detail |", "|---|---|---|"]
    for moment, what, detail in auto_timeline(status):
        out.append(f"| {moment.strftime('%Y-%m-%d %H:%M:%S')} | {_cell(what)} | {_cell(detail)} |")
    out.append("")
    if review.get("timelineNotes"):
        out += ["### Timeline notes", "", _block(review.get("timelineNotes")), ""]

    out += ["## Root cause", "", _block(review.get("rootCause")), ""]
    out += ["## Detection review", "", _block(review.get("detection")), ""]
    out += ["## Communication", "", _block(review.get("communication")), ""]

    out += ["## Action items", ""]
    items = review.get("actionItems") or []
    if items:
        out += ["| Done | Action | Owner | Due | Link |", "|---|---|---|---|---|"]
        today = now.date().isoformat()
        for item in items:
            due = item.get("dueDate") or ""
            overdue = bool(due) and not item.get("done") and str(due) < today
            out.append(f"| {'yes' if item.get('done') else 'no'} | {_cell(item.get('title'))} | "
                       f"{_cell(item.get('owner'))} | {_cell(due)}{' (overdue)' if overdue else ''} | "
                       f"{_cell(item.get('url'))} |")
        open_items = sum(1 for item in items if not item.get("done"))
        out += ["", f"{open_items} of {len(items)} action item(s) open."]
    else:
        out.append("_No action items yet._")
    links = spec.get("links") or []
    if links:
        out += ["", "## Links", ""]
        out += [f"- [{link.get('title') or link['url']}]({link['url']})" for link in links if link.get("url")]
    out += ["", f"_Generated {now.strftime('%Y-%m-%d %H:%M UTC')} by incidentctl postmortem._", ""]
    return "\n".join(out)
