"""Response deadlines, resolution targets and the escalation schedule.

Pure code: every instant is a parameter (``detected_at``, ``now``); nothing reads a clock.
Instants in may be any timezone-aware ``datetime``; instants out are UTC. Naive datetimes raise
``ValueError``. See ``docs/deadlines.md`` for the user-facing description.

Deadline forms
--------------
Each per-priority entry of a :class:`DeadlinePolicy` is a string in one of these forms:

``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``, ``"1d"``
    Elapsed (wall-clock, 24x7) time, in the project's duration syntax (``domain.common.durations``, the
    same as in the CRDs): integer parts ``<n><unit>``, units ``d`` (24 h), ``h``, ``m``, ``s``,
    ``ms``, largest unit first, each at most once. ``"0s"`` means "at detection". A bare number
    in YAML/JSON (``300``) is taken as seconds.
``"16bh"``, ``"1.5bh"``
    Business hours: only working hours of the business calendar count
    (:meth:`BusinessCalendar.add_business_time`). Fri 16:00 + ``"2bh"`` = Mon 10:00.
``"nextBusinessDay"``
    The end of working hours of the first business day strictly after the local date of
    detection (defined precisely below). Same as ``"1bd"``.
``"3bd"`` (also ``"3 businessDays"``)
    The end of working hours of the 3rd business day strictly after the local date of detection.

"Next business day", precisely
------------------------------
Let *D* be the calendar date of the detection instant in the calendar's time zone. The deadline
is the end of working hours (``hours.end``, local time) on the first business day strictly after
*D* (a business day is a configured workday that is neither a public holiday nor an extra
holiday). The time of day of detection does not matter, only its local date. Examples with a
Mon-Fri 09:00-17:00 calendar:

* Monday 10:00 -> Tuesday 17:00
* Monday 02:00 (before opening) -> Tuesday 17:00 (still "the next business day")
* Friday 18:00 -> Monday 17:00; if that Monday is a public holiday -> Tuesday 17:00
* Saturday or Sunday, any time -> Monday 17:00

The deadline is returned in UTC; it is 17:00 local on both sides of a DST change.

Escalation schedule
-------------------
An unacknowledged incident escalates when its response deadline passes: level 1 is due exactly
at the response deadline, level *k* at ``deadline + (k - 1) * interval``, up to ``max_level``.
Acknowledging stops escalation (:func:`escalation_level_due` returns 0); a handler should never
lower the level it has already recorded in ``status``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal

from ..common.durations import duration_value, format_duration
from .calendar import BusinessCalendar
from .priority import parse_priority

__all__ = [
    "DeadlineRule",
    "DeadlinePolicy",
    "DEFAULT_POLICY",
    "DEFAULT_CALENDAR",
    "response_deadline",
    "resolution_target",
    "escalation_level_due",
    "escalation_due_at",
    "next_escalation_at",
]

# ---------------------------------------------------------------------------------------- durations

# ---------------------------------------------------------------------------------------- rules

RuleKind = Literal["elapsed", "businessHours", "businessDays"]

#: Sanity bounds: a deadline further out than this is a typo, and would make the calendar walk long.
_MAX_BUSINESS_DAYS = 366
_MAX_BUSINESS_HOURS = 366 * 24
_BUSINESS_HOURS = re.compile(r"^(\d+(?:\.\d+)?)bh$", re.IGNORECASE)
_BUSINESS_DAYS = re.compile(r"^(\d+)\s*(?:bd|businessdays?)$", re.IGNORECASE)


@dataclass(frozen=True)
class DeadlineRule:
    """One deadline rule: how far after the reference instant the deadline is.

    ``kind`` ``"elapsed"`` uses ``duration`` (24x7 time), ``"businessHours"`` uses ``duration``
    counted in working hours only, ``"businessDays"`` uses ``days`` (end of working hours of the
    ``days``-th business day strictly after the local detection date; 1 = next business day).
    """

    kind: RuleKind
    duration: timedelta = timedelta(0)
    days: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("elapsed", "businessHours", "businessDays"):
            raise ValueError(f"invalid deadline rule kind {self.kind!r}")
        if self.duration < timedelta(0):
            raise ValueError(f"deadline rule duration must not be negative, got {self.duration}")
        if self.kind == "businessDays" and self.days < 1:
            raise ValueError(f"businessDays rule needs days >= 1, got {self.days}")

    @classmethod
    def parse(
        cls, value: str | int | float | timedelta | DeadlineRule, *, field: str = "deadline"
    ) -> DeadlineRule:
        """Parse one of the documented forms (module docstring); ``ValueError`` naming ``field``."""
        if isinstance(value, DeadlineRule):
            return value
        if isinstance(value, str):
            text = value.strip()
            if text.lower() == "nextbusinessday":
                return cls("businessDays", days=1)
            if match := _BUSINESS_DAYS.match(text):
                days = int(match[1])
                if not 1 <= days <= _MAX_BUSINESS_DAYS:
                    raise ValueError(
                        f"{field}: business days must be between 1 and {_MAX_BUSINESS_DAYS}, got {value!r}"
                    )
                return cls("businessDays", days=days)
            if match := _BUSINESS_HOURS.match(text.replace(" ", "")):
                hours = float(match[1])
                if hours > _MAX_BUSINESS_HOURS:
                    raise ValueError(
                        f"{field}: business hours must be at most {_MAX_BUSINESS_HOURS}, got {value!r}"
                    )
                return cls("businessHours", duration=timedelta(hours=hours))
            try:
                return cls("elapsed", duration=duration_value(text, field=field))
            except ValueError:
                raise ValueError(
                    f"{field}: invalid deadline {value!r}; expected a duration ('30m', '2h', '1h30m'), "
                    "business hours ('16bh'), 'nextBusinessDay' or business days ('3bd')"
                ) from None
        return cls("elapsed", duration=duration_value(value, field=field))

    def __str__(self) -> str:
        if self.kind == "businessDays":
            return "nextBusinessDay" if self.days == 1 else f"{self.days}bd"
        if self.kind == "businessHours":
            return f"{self.duration.total_seconds() / 3600:g}bh"
        return format_duration(self.duration)

    def due(self, start: datetime, calendar: BusinessCalendar) -> datetime:
        """The deadline (UTC) for reference instant ``start``; never earlier than ``start``."""
        _require_aware(start, "detected_at")
        instant = start.astimezone(UTC)
        if self.kind == "elapsed":
            return instant + self.duration
        if self.kind == "businessHours":
            return calendar.add_business_time(instant, self.duration)
        day = calendar.nth_business_day(calendar.local_date(instant), self.days)
        # End of working hours of a later local date is after ``instant`` -- except in absurd
        # configurations; the max() keeps the "never before detection" guarantee unconditional.
        return max(instant, calendar.end_of_business_day(day))


# ---------------------------------------------------------------------------------------- policy

_DEFAULT_RESPONSE = {"P1": "5m", "P2": "30m", "P3": "2h", "P4": "nextBusinessDay"}
_DEFAULT_RESOLUTION = {"P1": "4h", "P2": "8h", "P3": "3bd", "P4": "5bd"}
_DEFAULT_ESCALATION_INTERVAL = {"P1": "5m", "P2": "15m", "P3": "30m", "P4": "4h"}
DEFAULT_MAX_ESCALATION_LEVEL = 3


def _rules(
    given: Mapping[str, Any] | None, defaults: Mapping[str, str], where: str
) -> MappingProxyType[str, DeadlineRule]:
    if given is not None and not isinstance(given, Mapping):
        raise ValueError(f"{where}: expected a mapping of priority (P1-P4) to deadline, got {given!r}")
    merged = {p: DeadlineRule.parse(v, field=f"{where}.{p}") for p, v in defaults.items()}
    for key, value in (given or {}).items():
        priority = _priority_key(key, where)
        merged[priority] = DeadlineRule.parse(value, field=f"{where}.{priority}")
    return MappingProxyType(merged)


def _priority_key(key: Any, where: str) -> str:
    try:
        return parse_priority(key)
    except ValueError:
        raise ValueError(f"{where}: unknown priority key {key!r}; expected P1, P2, P3 or P4") from None


@dataclass(frozen=True)
class DeadlinePolicy:
    """Per-priority response deadlines, resolution targets and escalation intervals.

    Constructor arguments may be partial mappings (missing priorities take the defaults) whose
    values are :class:`DeadlineRule` objects or their string forms; escalation intervals are
    plain durations (``"5m"`` or ``timedelta``) and must be positive. After construction the
    mappings are complete and read-only. Defaults:

    ========  ==================  =====================  ====================
    priority  response            resolution target      escalation interval
    ========  ==================  =====================  ====================
    P1        5m (page at once)   4h                     5m
    P2        30m                 8h                     15m
    P3        2h                  3bd                    30m
    P4        nextBusinessDay     5bd                    4h
    ========  ==================  =====================  ====================

    ``max_escalation_level`` (default 3, 0 disables escalation) caps the level.
    """

    response: Mapping[str, DeadlineRule] = field(default_factory=dict)
    resolution: Mapping[str, DeadlineRule] = field(default_factory=dict)
    escalation_interval: Mapping[str, timedelta] = field(default_factory=dict)
    max_escalation_level: int = DEFAULT_MAX_ESCALATION_LEVEL

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "response", _rules(self.response, _DEFAULT_RESPONSE, "response"))
        set_(self, "resolution", _rules(self.resolution, _DEFAULT_RESOLUTION, "resolution"))
        given = self.escalation_interval
        if given is not None and not isinstance(given, Mapping):
            raise ValueError(
                f"escalationInterval: expected a mapping of priority (P1-P4) to duration, got {given!r}"
            )
        intervals = {
            p: duration_value(v, field=f"escalationInterval.{p}")
            for p, v in _DEFAULT_ESCALATION_INTERVAL.items()
        }
        for key, value in (given or {}).items():
            priority = _priority_key(key, "escalationInterval")
            interval = duration_value(value, field=f"escalationInterval.{priority}")
            if interval <= timedelta(0):
                raise ValueError(f"escalationInterval.{priority}: must be greater than zero, got {value!r}")
            intervals[priority] = interval
        set_(self, "escalation_interval", MappingProxyType(intervals))
        level = self.max_escalation_level
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise ValueError(f"maxEscalationLevel: expected an integer >= 0, got {level!r}")

    @classmethod
    def from_dict(cls, config: Mapping[str, Any] | None, *, where: str = "deadlines") -> DeadlinePolicy:
        """Build from the config form; missing keys/priorities take the defaults.

        ``{"response": {"P1": "5m", ...}, "resolution": {...}, "escalationInterval": {...},
        "maxEscalationLevel": 3}``. Unknown keys and bad values raise ``ValueError`` naming the
        field by its path under ``where``, e.g. ``"deadlines.response.P2: invalid deadline ..."``.
        """
        if config is None:
            return cls()
        if not isinstance(config, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(config).__name__}")
        allowed = {"response", "resolution", "escalationInterval", "maxEscalationLevel"}
        unknown = sorted(str(k) for k in config if k not in allowed)
        if unknown:
            raise ValueError(
                f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
            )
        try:
            return cls._from_dict(config)
        except ValueError as error:
            raise ValueError(f"{where}.{error}") from None

    @classmethod
    def _from_dict(cls, config: Mapping[str, Any]) -> DeadlinePolicy:
        kwargs: dict[str, Any] = {
            "response": config.get("response") or {},
            "resolution": config.get("resolution") or {},
            "escalation_interval": config.get("escalationInterval") or {},
        }
        if config.get("maxEscalationLevel") is not None:
            kwargs["max_escalation_level"] = config["maxEscalationLevel"]
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The config form; ``from_dict(to_dict())`` round-trips."""
        return {
            "response": {p: str(r) for p, r in self.response.items()},
            "resolution": {p: str(r) for p, r in self.resolution.items()},
            "escalationInterval": {p: format_duration(d) for p, d in self.escalation_interval.items()},
            "maxEscalationLevel": self.max_escalation_level,
        }

    def response_rule(self, priority: str) -> DeadlineRule:
        return self.response[parse_priority(priority)]

    def resolution_rule(self, priority: str) -> DeadlineRule:
        return self.resolution[parse_priority(priority)]

    def escalation_interval_for(self, priority: str) -> timedelta:
        return self.escalation_interval[parse_priority(priority)]


DEFAULT_POLICY = DeadlinePolicy()
#: UTC, Mon-Fri 09:00-17:00, no public holidays.
DEFAULT_CALENDAR = BusinessCalendar()


# ---------------------------------------------------------------------------------------- deadlines


def response_deadline(
    priority: str,
    detected_at: datetime,
    policy: DeadlinePolicy | None = None,
    calendar: BusinessCalendar | None = None,
) -> datetime:
    """When the incident must be acknowledged (UTC). Never before ``detected_at``.

    ``policy``/``calendar`` default to :data:`DEFAULT_POLICY` / :data:`DEFAULT_CALENDAR`.
    With the defaults: P1 +5 min, P2 +30 min, P3 +2 h (elapsed), P4 next business day (end of
    working hours of the first business day strictly after the local detection date).
    """
    policy = policy or DEFAULT_POLICY
    return policy.response_rule(priority).due(detected_at, calendar or DEFAULT_CALENDAR)


def resolution_target(
    priority: str,
    detected_at: datetime,
    policy: DeadlinePolicy | None = None,
    calendar: BusinessCalendar | None = None,
) -> datetime:
    """When the incident should be resolved (UTC). Never before ``detected_at``.

    With the defaults: P1 +4 h, P2 +8 h (elapsed), P3 end of the 3rd business day, P4 end of the
    5th business day strictly after the local detection date.
    """
    policy = policy or DEFAULT_POLICY
    return policy.resolution_rule(priority).due(detected_at, calendar or DEFAULT_CALENDAR)


# ---------------------------------------------------------------------------------------- escalation


def _check_schedule(interval: timedelta, max_level: int) -> None:
    if not isinstance(interval, timedelta) or interval <= timedelta(0):
        raise ValueError(f"interval: must be a positive timedelta, got {interval!r}")
    if isinstance(max_level, bool) or not isinstance(max_level, int) or max_level < 0:
        raise ValueError(f"max_level: expected an integer >= 0, got {max_level!r}")


def escalation_level_due(
    response_deadline: datetime,
    acknowledged: bool,
    now: datetime,
    interval: timedelta,
    max_level: int,
) -> int:
    """The escalation level an incident should have reached at ``now``.

    0 when acknowledged or before ``response_deadline``; 1 from the deadline itself (inclusive);
    then +1 at each further ``interval``: level *k* is due at ``deadline + (k-1)*interval``;
    never above ``max_level``. Monotonic non-decreasing in ``now``.
    """
    _require_aware(response_deadline, "response_deadline")
    _require_aware(now, "now")
    _check_schedule(interval, max_level)
    if acknowledged or max_level == 0:
        return 0
    late = now.astimezone(UTC) - response_deadline.astimezone(UTC)
    if late < timedelta(0):
        return 0
    return min(max_level, 1 + late // interval)


def escalation_due_at(response_deadline: datetime, level: int, interval: timedelta) -> datetime:
    """When escalation level ``level`` (>= 1) is due: ``deadline + (level-1)*interval``, UTC."""
    _require_aware(response_deadline, "response_deadline")
    if isinstance(level, bool) or not isinstance(level, int) or level < 1:
        raise ValueError(f"level: expected an integer >= 1, got {level!r}")
    _check_schedule(interval, 0)
    return response_deadline.astimezone(UTC) + (level - 1) * interval


def next_escalation_at(
    response_deadline: datetime,
    current_level: int,
    interval: timedelta,
    max_level: int,
) -> datetime | None:
    """Due time (UTC) of level ``current_level + 1``; ``None`` once ``current_level >= max_level``.

    Use it to schedule the next wake-up. The result may lie in the past (e.g. after an operator
    restart); then escalate now.
    """
    _require_aware(response_deadline, "response_deadline")
    _check_schedule(interval, max_level)
    if isinstance(current_level, bool) or not isinstance(current_level, int) or current_level < 0:
        raise ValueError(f"current_level: expected an integer >= 0, got {current_level!r}")
    if current_level >= max_level:
        return None
    return escalation_due_at(response_deadline, current_level + 1, interval)


def _require_aware(dt: datetime, name: str) -> None:
    if not isinstance(dt, datetime):
        raise TypeError(f"{name}: expected a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime {dt.isoformat()}; pass a timezone-aware datetime")
