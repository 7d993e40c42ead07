"""Customer-communication drafts (status update, resolution notice, follow-up) from Jinja2 templates.

Templates run in the operator's one template sandbox (:mod:`..common.sandbox`, limits
``sandbox.DOCUMENT``: 20000 characters, 2 s); values are only ever passed as data, never rendered
as templates, so a field such as a title of ``{{ 7*7 }}`` comes out literally. Every failure is a
:class:`DraftError` naming the template (and line), never a crash.

Shipped defaults live in ``incident_operator/templates/<kind>.md.j2``; a ConfigMap (operator
config ``templates.configMap``) may override any of them under the same key.

Public (customer-facing) states use the Statuspage vocabulary, see :func:`public_state`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib import resources
from typing import Any, Mapping

from ..common import sandbox
from ..common.timeutil import format_time, time_or_none

KINDS = ("status-update", "resolution", "follow-up")
PUBLIC_STATES = ("investigating", "identified", "monitoring", "resolved")
PUBLIC_STATE_LABELS = {s: s.capitalize() for s in PUBLIC_STATES}
# Statuspage impact_override from our priority.
IMPACT = {"P1": "critical", "P2": "major", "P3": "minor", "P4": "none"}
RENDER_SECONDS = sandbox.DOCUMENT.max_seconds


class DraftError(ValueError):
    """A template could not be rendered; the message says which one and why."""


def template_name(kind: str) -> str:
    return f"{kind}.md.j2"


def kinds_for(state: str) -> tuple[str, ...]:
    """The drafts worth having in a lifecycle state."""
    if state in ("Resolved", "Closed"):
        return KINDS
    return ("status-update",)


def public_state(state: str | None, spec: Mapping[str, Any] | None = None) -> str:
    """Lifecycle state -> Statuspage state.

    Triggered, Acknowledged, Investigating -> ``investigating`` (``identified`` once
    ``spec.resolution`` says what the fix is); Mitigated -> ``monitoring`` (a fix is in place
    and we watch it); Resolved, Closed -> ``resolved``.
    """
    state = state or "Triggered"
    if state in ("Resolved", "Closed"):
        return "resolved"
    if state == "Mitigated":
        return "monitoring"
    if str((spec or {}).get("resolution") or "").strip():
        return "identified"
    return "investigating"


def _text_time(value: Any) -> str | None:
    moment = time_or_none(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else None


def _duration_text(start: Any, end: Any) -> str | None:
    a, b = time_or_none(start), time_or_none(end)
    if not a or not b or b < a:
        return None
    minutes = int((b - a).total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    hours, minutes = divmod(minutes, 60)
    parts = ([f"{hours} hour" + ("s" if hours != 1 else "")] if hours else []) + \
            ([f"{minutes} minute" + ("s" if minutes != 1 else "")] if minutes else [])
    return " ".join(parts)


def template_context(incident: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Plain data (strings, numbers, lists of strings) the templates see. Documented in docs/communications.md."""
    metadata = incident.get("metadata") or {}
    spec = incident.get("spec") or {}
    status = incident.get("status") or {}
    impact = spec.get("customerImpact") or {}
    review = spec.get("review") or {}
    state = status.get("state") or spec.get("state") or "Triggered"
    public = public_state(state, spec)
    priority = status.get("priority") or spec.get("priority")
    started = status.get("startedAt") or spec.get("startedAt")
    end = status.get("resolvedAt") or status.get("mitigatedAt")
    return {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "title": spec.get("title"),
        "service": spec.get("service"),
        "service_name": spec.get("service") or "our service",
        "priority": priority,
        "severity": status.get("severity"),
        "state": state,
        "public_state": public,
        "public_state_label": PUBLIC_STATE_LABELS[public],
        "impact": IMPACT.get(priority or "", "none"),
        "impact_summary": impact.get("summary"),
        "affected_account_count": len(impact.get("affectedAccounts") or []),
        "ticket_count": impact.get("ticketCount"),
        "started_at": started,
        "started_at_text": _text_time(started),
        "detected_at": status.get("detectedAt"),
        "mitigated_at": status.get("mitigatedAt"),
        "mitigated_at_text": _text_time(status.get("mitigatedAt")),
        "resolved_at": status.get("resolvedAt"),
        "resolved_at_text": _text_time(status.get("resolvedAt")),
        "duration_text": _duration_text(started, end),
        "workaround": spec.get("workaround"),
        "resolution": spec.get("resolution"),
        "root_cause": review.get("rootCause"),
        "prevention": [str(item.get("title")) for item in review.get("actionItems") or [] if item.get("title")],
        "now": format_time(now),
        "now_text": _text_time(format_time(now)),
    }


# ----------------------------------------------------------------------------------- rendering

def default_templates() -> dict[str, str]:
    """The shipped templates, by file name (``status-update.md.j2``, ...)."""
    folder = resources.files("incident_operator") / "templates"
    return {template_name(kind): (folder / template_name(kind)).read_text(encoding="utf-8") for kind in KINDS}


def render_template(source: str, context: Mapping[str, Any], name: str = "<template>",
                    seconds: float = RENDER_SECONDS) -> str:
    """Renders one template source in the sandbox; raises :class:`DraftError` with a clear message."""
    limits = replace(sandbox.DOCUMENT, max_seconds=seconds)
    try:
        return sandbox.render(source, context, limits).strip() + "\n"
    except sandbox.TemplateError as error:
        if error.reason == "sandbox":
            raise DraftError(f"{name}: refused by the template sandbox: {error.message}") from None
        if error.reason == "undefined":
            raise DraftError(f"{name}: {error.message} (see docs/communications.md for the fields)") from None
        raise DraftError(f"{name}: {error.message}") from None


@dataclass
class Drafts:
    state: str
    public_state: str
    texts: dict[str, str] = field(default_factory=dict)  # kind -> Markdown
    errors: list[str] = field(default_factory=list)  # override problems (a default was used instead)


def render_drafts(incident: Mapping[str, Any], now: datetime, overrides: Mapping[str, str] | None = None,
                  kinds: tuple[str, ...] | None = None, override_source: str = "override") -> Drafts:
    """Renders the drafts for the incident's state; a broken override falls back to the default.

    Raises :class:`DraftError` only when a shipped default fails (a bug, not user input).
    """
    context = template_context(incident, now)
    defaults = default_templates()
    drafts = Drafts(state=context["state"], public_state=context["public_state"])
    for kind in kinds or kinds_for(context["state"]):
        name = template_name(kind)
        source = (overrides or {}).get(name)
        if source is not None:
            try:
                drafts.texts[kind] = render_template(source, context, f"{name} ({override_source})")
                continue
            except DraftError as error:
                drafts.errors.append(str(error))
        drafts.texts[kind] = render_template(defaults[name], context, name)
    return drafts


def statuspage_payload(incident: Mapping[str, Any], drafts: Drafts) -> dict[str, Any]:
    """The status update as an Atlassian Statuspage incident body (for a person to review and post)."""
    spec = incident.get("spec") or {}
    status = incident.get("status") or {}
    body = drafts.texts.get("resolution") if drafts.public_state == "resolved" and "resolution" in drafts.texts \
        else drafts.texts.get("status-update")
    return {"incident": {
        "name": spec.get("title"),
        "status": drafts.public_state,
        "impact_override": IMPACT.get(status.get("priority") or spec.get("priority") or "", "none"),
        "body": body,
    }}
