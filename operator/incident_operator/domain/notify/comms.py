"""Customer-communication drafts (status update, resolution notice, follow-up) from Jinja2 templates.

Templates run in a hardened ``ImmutableSandboxedEnvironment``:
- attribute access to internals (``''.__class__.__mro__``, ``cycler.__init__.__globals__``) and
  mutation of values are refused by the sandbox (``SecurityError``);
- values are only ever passed as data, never rendered as templates, so a field such as a title
  of ``{{ 7*7 }}`` comes out literally;
- resource limits: ``*``/``**``/``%`` that would build huge values, numeric call and filter
  arguments above ``MAX_ARGUMENT``, output above ``MAX_OUTPUT`` characters and rendering longer
  than ``RENDER_SECONDS`` are refused;
- every failure is a :class:`DraftError` naming the template (and line), never a crash.

Shipped defaults live in ``incident_operator/templates/<kind>.md.j2``; a ConfigMap (operator
config ``templates.configMap``) may override any of them under the same key.

Public (customer-facing) states use the Statuspage vocabulary, see :func:`public_state`.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, Callable, Mapping

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from ...api import INITIAL_STATE, RESOLVED_OR_CLOSED, Priority, State
from ..common.timeutil import format_time, parse_time

KINDS = ("status-update", "resolution", "follow-up")
PUBLIC_STATES = ("investigating", "identified", "monitoring", "resolved")
PUBLIC_STATE_LABELS = {s: s.capitalize() for s in PUBLIC_STATES}
# Statuspage impact_override from our priority.
IMPACT: dict[str, str] = {Priority.P1: "critical", Priority.P2: "major", Priority.P3: "minor", Priority.P4: "none"}
MAX_OUTPUT = 20_000
MAX_ARGUMENT = 100_000
MAX_EXPONENT = 100
MAX_INT_BITS = 4096
RENDER_SECONDS = 2.0


class DraftError(ValueError):
    """A template could not be rendered; the message says which one and why."""


def template_name(kind: str) -> str:
    return f"{kind}.md.j2"


def kinds_for(state: str) -> tuple[str, ...]:
    """The drafts worth having in a lifecycle state."""
    if state in RESOLVED_OR_CLOSED:
        return KINDS
    return ("status-update",)


def public_state(state: str | None, spec: Mapping[str, Any] | None = None) -> str:
    """Lifecycle state -> Statuspage state.

    Triggered, Acknowledged, Investigating -> ``investigating`` (``identified`` once
    ``spec.resolution`` says what the fix is); Mitigated -> ``monitoring`` (a fix is in place
    and we watch it); Resolved, Closed -> ``resolved``.
    """
    state = state or INITIAL_STATE
    if state in RESOLVED_OR_CLOSED:
        return "resolved"
    if state == State.MITIGATED:
        return "monitoring"
    if str((spec or {}).get("resolution") or "").strip():
        return "identified"
    return "investigating"


def _text_time(value: Any) -> str | None:
    try:
        moment = parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else None


def _duration_text(start: Any, end: Any) -> str | None:
    try:
        a, b = parse_time(start), parse_time(end)
    except (TypeError, ValueError):
        return None
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
    state = status.get("state") or spec.get("state") or INITIAL_STATE
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


# ----------------------------------------------------------------------------------- sandbox

def _check_argument(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_ARGUMENT:
        raise SecurityError(f"numeric argument {value} is larger than the template limit {MAX_ARGUMENT}")


def _capped_filter(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)  # keeps jinja's pass_context/pass_environment marks
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for value in list(args[1:]) + list(kwargs.values()):
            _check_argument(value)
        return function(*args, **kwargs)
    return wrapper


_BIG_FORMAT = re.compile(r"\d{5,}")


class HardenedSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox plus limits against values that would exhaust memory."""

    intercepted_binops = frozenset(["*", "**", "%"])

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _capped_filter(function) for name, function in self.filters.items()}

    def call_binop(self, context, operator, left, right):  # noqa: ANN001 - jinja's signature
        if operator == "**" and isinstance(right, (int, float)):
            if abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is larger than the template limit {MAX_EXPONENT}")
            if isinstance(left, int) and abs(left).bit_length() * abs(right) > MAX_INT_BITS:
                raise SecurityError("the power would be a larger number than templates may compute")
        if operator == "*":
            for sized, count in ((left, right), (right, left)):
                if isinstance(sized, (str, list, tuple)) and isinstance(count, int) and \
                        len(sized) * count > MAX_OUTPUT:
                    raise SecurityError("repetition would exceed the template output limit")
        if operator == "%" and isinstance(left, str) and _BIG_FORMAT.search(left):
            raise SecurityError("format widths this large are not allowed in templates")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - jinja's signature
        for value in list(args) + list(kwargs.values()):
            _check_argument(value)
        return super().call(__context, __obj, *args, **kwargs)


class _Timeout(Exception):
    pass


@functools.lru_cache(maxsize=1)
def _environment() -> HardenedSandbox:
    return HardenedSandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
                           trim_blocks=True, lstrip_blocks=True)


def _render_limited(template: jinja2.Template, context: Mapping[str, Any], seconds: float) -> str:
    """Renders with an output cap and a wall-clock limit enforced by a per-thread trace hook."""
    deadline = time.monotonic() + seconds
    previous = sys.gettrace()

    def tracer(frame, event, arg):  # noqa: ANN001
        if time.monotonic() > deadline:
            raise _Timeout()
        return tracer

    chunks: list[str] = []
    size = 0
    sys.settrace(tracer)
    try:
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise SecurityError(f"output is longer than {MAX_OUTPUT} characters")
            chunks.append(chunk)
    finally:
        sys.settrace(previous)
    return "".join(chunks)


def default_templates() -> dict[str, str]:
    """The shipped templates, by file name (``status-update.md.j2``, ...)."""
    folder = resources.files("incident_operator") / "templates"
    return {template_name(kind): (folder / template_name(kind)).read_text(encoding="utf-8") for kind in KINDS}


def render_template(source: str, context: Mapping[str, Any], name: str = "<template>",
                    seconds: float = RENDER_SECONDS) -> str:
    """Renders one template source sandboxed; raises :class:`DraftError` with a clear message."""
    try:
        template = _environment().from_string(source)
        return _render_limited(template, context, seconds).strip() + "\n"
    except jinja2.TemplateSyntaxError as error:
        raise DraftError(f"{name}: syntax error at line {error.lineno}: {error.message}") from None
    except SecurityError as error:
        raise DraftError(f"{name}: refused by the template sandbox: {error}") from None
    except jinja2.UndefinedError as error:
        raise DraftError(f"{name}: {error.message} (see docs/communications.md for the fields)") from None
    except _Timeout:
        raise DraftError(f"{name}: rendering took longer than {seconds:g}s and was stopped") from None
    except jinja2.TemplateError as error:
        raise DraftError(f"{name}: template error: {error}") from None
    except RecursionError:
        raise DraftError(f"{name}: template recursion too deep") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError, OverflowError,
            MemoryError) as error:
        raise DraftError(f"{name}: {type(error).__name__}: {error}") from None


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
