"""Incident priority: P1..P4 from impact x urgency (ITIL), or set directly.

An incident's *effective priority* is the priority written in ``spec.priority`` when there is one;
otherwise it is read from the ITIL priority matrix, impact first, urgency second:

| impact \\ urgency | High | Medium | Low |
|------------------|------|--------|-----|
| **High**         | P1   | P2     | P3  |
| **Medium**       | P2   | P3     | P4  |
| **Low**          | P3   | P4     | P4  |

Severity names follow the priority: P1 Critical, P2 High, P3 Medium, P4 Low.

Input is accepted case-insensitively and with surrounding blanks (``"high"``, ``" p2 "``);
results are always the canonical plain strings ``"P1"``..``"P4"`` and ``"Critical"``..``"Low"``
(plain ``str``, so they serialise to JSON/YAML without surprises). An empty string counts as
"not set", because that is what a cleared field often looks like in a Kubernetes object.

Pure code: no I/O, no clock.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "Priority",
    "Impact",
    "Urgency",
    "Severity",
    "PRIORITIES",
    "PRIORITY_MATRIX",
    "effective_priority",
    "priority_from_matrix",
    "severity_of",
    "parse_priority",
    "parse_impact",
    "parse_urgency",
]


class Priority(StrEnum):
    """Incident priority; P1 is the most urgent."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class Impact(StrEnum):
    """How widely the incident hurts (how many customers / how much of the service)."""

    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


class Urgency(StrEnum):
    """How fast the impact grows or how soon it must be stopped."""

    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


class Severity(StrEnum):
    """Human-facing severity name of a priority."""

    CRITICAL = "Critical"
    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


#: All priorities, most urgent first, as plain strings.
PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)

#: ``(impact, urgency) -> priority``, plain strings, impact first.
PRIORITY_MATRIX: dict[tuple[str, str], str] = {
    ("High", "High"): "P1",
    ("High", "Medium"): "P2",
    ("Medium", "High"): "P2",
    ("High", "Low"): "P3",
    ("Medium", "Medium"): "P3",
    ("Low", "High"): "P3",
    ("Medium", "Low"): "P4",
    ("Low", "Medium"): "P4",
    ("Low", "Low"): "P4",
}

_SEVERITY: dict[str, str] = {
    "P1": Severity.CRITICAL.value,
    "P2": Severity.HIGH.value,
    "P3": Severity.MEDIUM.value,
    "P4": Severity.LOW.value,
}

_LEVELS = ("High", "Medium", "Low")


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def parse_priority(value: str, *, field: str = "priority") -> str:
    """Return the canonical priority (``"P1"``..``"P4"``) for ``value``.

    Raises ``ValueError`` naming ``field`` when ``value`` is not a priority.
    """
    if isinstance(value, str):
        candidate = value.strip().upper()
        if candidate in _SEVERITY:
            return candidate
    raise ValueError(f"{field}: invalid priority {value!r}; expected one of {', '.join(PRIORITIES)}")


def _parse_level(value: str, field: str) -> str:
    if isinstance(value, str):
        candidate = value.strip().capitalize()
        if candidate in _LEVELS:
            return candidate
    raise ValueError(f"{field}: invalid value {value!r}; expected one of {', '.join(_LEVELS)}")


def parse_impact(value: str) -> str:
    """Return the canonical impact (``"High"``, ``"Medium"`` or ``"Low"``); ``ValueError`` otherwise."""
    return _parse_level(value, "impact")


def parse_urgency(value: str) -> str:
    """Return the canonical urgency (``"High"``, ``"Medium"`` or ``"Low"``); ``ValueError`` otherwise."""
    return _parse_level(value, "urgency")


def priority_from_matrix(impact: str, urgency: str) -> str:
    """Look ``(impact, urgency)`` up in the ITIL matrix (see the module docstring)."""
    return PRIORITY_MATRIX[(parse_impact(impact), parse_urgency(urgency))]


def effective_priority(priority: str | None, impact: str | None, urgency: str | None) -> str:
    """The incident's effective priority.

    * An explicit ``priority`` wins (an invalid one raises; it does not silently fall back to the
      matrix, because the author clearly meant to set it).
    * Otherwise both ``impact`` and ``urgency`` must be set, and the ITIL matrix decides.
    * ``None`` and ``""`` both mean "not set".

    Raises ``ValueError`` with a message naming the offending or missing field(s).
    """
    if priority is not None and not _blank(priority):
        return parse_priority(priority)
    missing = [name for name, value in (("impact", impact), ("urgency", urgency)) if _blank(value)]
    if missing or impact is None or urgency is None:  # (missing is empty only when both are set)
        raise ValueError(
            "cannot determine priority: priority is not set and "
            + " and ".join(missing)
            + (" is" if len(missing) == 1 else " are")
            + " missing; set priority (P1-P4) or both impact and urgency (High/Medium/Low)"
        )
    return priority_from_matrix(impact, urgency)


def severity_of(priority: str) -> str:
    """Severity name of a priority: P1 Critical, P2 High, P3 Medium, P4 Low."""
    return _SEVERITY[parse_priority(priority)]
