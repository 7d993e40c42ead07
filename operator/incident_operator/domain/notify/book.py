"""Notification delivery bookkeeping in ``status.notifications``: pure functions, no I/O.

The incident status is a transactional outbox:

1. the lifecycle write that produces a transition or an escalation also appends the
   notification to ``pending`` (:func:`queue`), in the SAME conditional write: a crash
   can lose neither the transition nor its notification, and a 409 loses both together;
2. the notifier claims a due item with a conditional write (:func:`claim`: attempts + 1,
   ``nextAttemptAt`` = now + claim timeout), so a rival worker sees it is taken;
3. it sends to the channels not yet in the item's ``sentTo`` and records the result
   (:func:`record`): delivered keys move to ``delivered``; failures get ``lastError`` and a
   backoff; an item that cannot or need not be delivered moves to ``abandoned``.

A notification is therefore never sent twice to a channel once its delivery is recorded,
restarts included. The one unavoidable window is a crash between a channel accepting a
packet and the write recording it; the retry after the claim timeout may then repeat that
packet, so every packet carries a stable ``dedupKey`` (``<uid>/<key>``) receivers can use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from ..common.conditions import find_condition, set_condition
from ..common.durations import duration_value
from ..incident.timeline import DEFAULT_TIMELINE_LIMIT, append_entries, timeline_entry
from ..common.timeutil import format_time, format_time_precise, time_or_none

MAX_PENDING = 50  # status.notifications.pending maxItems
MAX_DELIVERED = 100  # status.notifications.delivered maxItems
MAX_ABANDONED = 50  # status.notifications.abandoned maxItems
ERROR_LIMIT = 1000
ACTOR = "incident-operator/notifier"
ESCALATED = "incident.escalated"

# Outcome reasons of one delivery attempt.
DELIVERED = "Delivered"
FAILED = "DeliveryFailed"
NO_POLICY = "NoEscalationPolicy"
NO_CHANNELS = "NoChannels"
SUPERSEDED = "Superseded"
GAVE_UP = "GaveUp"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class DeliverySettings:
    """``notifications:`` in the operator configuration (all optional)."""

    initial_backoff: timedelta = timedelta(seconds=5)
    max_backoff: timedelta = timedelta(minutes=5)
    factor: float = 2.0
    jitter: float = 0.1
    max_attempts: int = 20
    # How long a claimed item is reserved for the worker that claimed it; after a crash
    # mid-send the item is retried once this has passed.
    claim_timeout: timedelta = timedelta(seconds=60)
    send_timeout: timedelta = timedelta(seconds=15)
    packet_timeline_entries: int = 10
    concurrency: int = 8

    KEYS = ("backoff", "maxAttempts", "claimTimeout", "sendTimeout", "packetTimelineEntries", "concurrency")
    BACKOFF_KEYS = ("initial", "max", "factor", "jitter")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "DeliverySettings":
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.KEYS))
        if unknown:
            raise SettingsError(f"notifications: unknown key(s) {', '.join(unknown)}; known: {', '.join(cls.KEYS)}")
        backoff = dict(data.get("backoff") or {})
        unknown = sorted(set(backoff) - set(cls.BACKOFF_KEYS))
        if unknown:
            raise SettingsError(f"notifications.backoff: unknown key(s) {', '.join(unknown)}; "
                                f"known: {', '.join(cls.BACKOFF_KEYS)}")
        defaults = cls()
        try:
            settings = cls(
                initial_backoff=_duration(backoff.get("initial"), defaults.initial_backoff, "backoff.initial"),
                max_backoff=_duration(backoff.get("max"), defaults.max_backoff, "backoff.max"),
                factor=float(backoff.get("factor", defaults.factor)),
                jitter=float(backoff.get("jitter", defaults.jitter)),
                max_attempts=int(data.get("maxAttempts", defaults.max_attempts)),
                claim_timeout=_duration(data.get("claimTimeout"), defaults.claim_timeout, "claimTimeout"),
                send_timeout=_duration(data.get("sendTimeout"), defaults.send_timeout, "sendTimeout"),
                packet_timeline_entries=int(data.get("packetTimelineEntries", defaults.packet_timeline_entries)),
                concurrency=int(data.get("concurrency", defaults.concurrency)),
            )
        except (TypeError, ValueError) as error:
            raise SettingsError(f"notifications: {error}") from None
        if settings.initial_backoff <= timedelta(0) or settings.max_backoff < settings.initial_backoff:
            raise SettingsError("notifications.backoff: need 0 < initial <= max")
        if settings.factor < 1 or not 0 <= settings.jitter < 1:
            raise SettingsError("notifications.backoff: need factor >= 1 and 0 <= jitter < 1")
        if settings.max_attempts < 1 or settings.concurrency < 1 or not 0 <= settings.packet_timeline_entries <= 100:
            raise SettingsError("notifications: need maxAttempts >= 1, concurrency >= 1, "
                                "0 <= packetTimelineEntries <= 100")
        if settings.claim_timeout < settings.send_timeout:
            raise SettingsError("notifications: claimTimeout must be at least sendTimeout, or a slow send "
                                "could be claimed again by another worker while it is still running")
        return settings


def _duration(value: Any, default: timedelta, name: str) -> timedelta:
    return default if value is None else duration_value(value, field=name)


def backoff(attempts: int, settings: DeliverySettings, rand: float = 0.5) -> timedelta:
    """Delay before attempt ``attempts + 1``: initial * factor^(attempts-1), jittered, capped.

    ``rand`` in [0, 1) spreads retries of many incidents against one broken receiver
    (0.5 = no jitter); the result never exceeds ``max_backoff``.
    """
    exponent = max(attempts - 1, 0)
    seconds = settings.initial_backoff.total_seconds()
    cap = settings.max_backoff.total_seconds()
    for _ in range(exponent):  # multiply step by step: no overflow for large attempt counts
        seconds *= settings.factor
        if seconds >= cap:
            seconds = cap
            break
    seconds *= 1 + settings.jitter * (2 * min(max(rand, 0.0), 1.0) - 1)
    return timedelta(seconds=min(max(seconds, 0.001), cap))


# ----------------------------------------------------------------------------------- the book

def book_of(status: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``status.notifications`` with every list present."""
    book = dict((status or {}).get("notifications") or {})
    book["pending"] = [dict(item) for item in book.get("pending") or []]
    book["delivered"] = list(book.get("delivered") or [])
    book["abandoned"] = list(book.get("abandoned") or [])
    return book


def known_keys(book: Mapping[str, Any]) -> set[str]:
    return ({item.get("key") for item in book.get("pending") or []}
            | set(book.get("delivered") or []) | set(book.get("abandoned") or []))


def queue(notifications_status: Mapping[str, Any] | None, notifications: Iterable[Any],
          now: datetime) -> tuple[dict[str, Any], list[Any]]:
    """Adds ``Notification`` objects (key, event, level) not seen before to ``pending``.

    Returns the new book and the notifications actually added. When more than
    ``MAX_PENDING`` are pending (a receiver down for a very long time), the oldest are
    abandoned so the newest, most relevant ones are kept.
    """
    book = book_of({"notifications": notifications_status or {}})
    seen = known_keys(book)
    added = []
    for note in notifications:
        if note.key in seen:
            continue
        seen.add(note.key)
        item = {"key": note.key, "event": note.event, "createdAt": format_time_precise(now), "attempts": 0}
        if getattr(note, "level", 0):
            item["level"] = int(note.level)
        book["pending"].append(item)
        added.append(note)
    overflow = len(book["pending"]) - MAX_PENDING
    if overflow > 0:
        dropped = book["pending"][:overflow]
        book["pending"] = book["pending"][overflow:]
        book["abandoned"] = _bounded(book["abandoned"] + [item["key"] for item in dropped], MAX_ABANDONED)
        book["lastError"] = f"{overflow} notification(s) abandoned: more than {MAX_PENDING} were pending"
    return book, added


def find_item(book: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    for item in book.get("pending") or []:
        if isinstance(item, dict) and item.get("key") == key:
            return item
    return None


def attempt_time(item: Mapping[str, Any]) -> datetime | None:
    """When the item may next be attempted (None: right away)."""
    return time_or_none(item.get("nextAttemptAt"))


def is_due(item: Mapping[str, Any], now: datetime) -> bool:
    at = attempt_time(item)
    return at is None or at <= now


def due_keys(book: Mapping[str, Any], now: datetime) -> list[str]:
    """Keys of pending items due at ``now``, oldest first."""
    items = [item for item in book.get("pending") or [] if is_due(item, now)]
    items.sort(key=lambda item: (item.get("createdAt") or "", item.get("key") or ""))
    return [item["key"] for item in items]


def next_attempt_at(book_or_status: Mapping[str, Any] | None) -> datetime | None:
    """The earliest time a pending item is due (None when nothing is pending)."""
    source = book_or_status or {}
    if "notifications" in source:
        source = source.get("notifications") or {}
    times = []
    for item in source.get("pending") or []:
        at = time_or_none(item.get("nextAttemptAt"))
        # Never attempted: due since it was created.
        times.append(at or time_or_none(item.get("createdAt")) or datetime.min.replace(tzinfo=timezone.utc))
    return min(times) if times else None


def claim(book: Mapping[str, Any], key: str, now: datetime, settings: DeliverySettings) -> dict[str, Any]:
    """The book with ``key`` claimed: attempts + 1, reserved until now + claim timeout."""
    new = book_of({"notifications": book})
    item = find_item(new, key)
    if item is None:
        raise KeyError(key)
    item["attempts"] = int(item.get("attempts") or 0) + 1
    item["nextAttemptAt"] = format_time_precise(now + settings.claim_timeout)
    return new


# ----------------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class Target:
    """One channel of one policy level that a notification goes to."""

    id: str  # stable within the policy: "L<level>:<channel name>"; recorded in sentTo
    level: int  # 1-based policy level
    level_name: str
    channel: str
    secret_name: str
    secret_key: str


def policy_levels_for(item: Mapping[str, Any], policy_spec: Mapping[str, Any]) -> list[int]:
    """Which policy levels (1-based) a notification goes to.

    Escalation level N goes to policy level N; past the last level, the last level repeats.
    Everything else (state changes) goes to ``notifyOnStateChange`` (default: level 1).
    """
    levels = list(policy_spec.get("levels") or [])
    if not levels:
        return []
    if item.get("event") == ESCALATED and int(item.get("level") or 0) > 0:
        return [min(int(item["level"]), len(levels))]
    wanted = policy_spec.get("notifyOnStateChange") or [1]
    return sorted({int(n) for n in wanted if 1 <= int(n) <= len(levels)})


def targets_for(item: Mapping[str, Any], policy_spec: Mapping[str, Any]) -> list[Target]:
    levels = list(policy_spec.get("levels") or [])
    targets = []
    for number in policy_levels_for(item, policy_spec):
        level = levels[number - 1] or {}
        for index, channel in enumerate(level.get("channels") or []):
            ref = channel.get("secretRef") or {}
            name = str(channel.get("name") or f"channel-{index + 1}")
            targets.append(Target(id=f"L{number}:{name}", level=number,
                                  level_name=str(level.get("name") or f"level {number}"), channel=name,
                                  secret_name=str(ref.get("name") or ""), secret_key=str(ref.get("key") or "")))
    return targets


def select_policy(team: str | None, *candidate_lists: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The EscalationPolicy for a team: searched list by list (incident namespace, then shared).

    In each list, a policy naming the team in ``spec.teams`` wins; otherwise a policy with
    no ``teams`` (the namespace's default). Ties go to the alphabetically first name, so
    every replica picks the same one.
    """
    for policies in candidate_lists:
        ordered = sorted(policies or [], key=lambda p: (p.get("metadata") or {}).get("name") or "")
        if team:
            for policy in ordered:
                if team in ((policy.get("spec") or {}).get("teams") or []):
                    return policy
        for policy in ordered:
            if not (policy.get("spec") or {}).get("teams"):
                return policy
    return None


# ----------------------------------------------------------------------------------- results

@dataclass
class DeliveryResult:
    """What one attempt at one pending item achieved."""

    reason: str  # DELIVERED, FAILED, NO_POLICY, NO_CHANNELS, SUPERSEDED
    sent: list[str] = field(default_factory=list)  # target ids that accepted the packet now
    errors: list[str] = field(default_factory=list)  # redacted, one per failed target
    policy: str | None = None  # namespace/name of the policy used
    targets: list[str] = field(default_factory=list)  # human description, e.g. "L2 Secondary: pager"
    detail: str = ""


def describe(item: Mapping[str, Any]) -> str:
    level = int(item.get("level") or 0)
    return f"{item.get('event')}" + (f" (level {level})" if level else "")


def record(status: Mapping[str, Any], key: str, result: DeliveryResult, now: datetime,
           settings: DeliverySettings, *, generation: int | None = None, rand: float = 0.5,
           timeline_limit: int = DEFAULT_TIMELINE_LIMIT) -> dict[str, Any] | None:
    """The status fragment (notifications, timeline, conditions) recording ``result`` for ``key``.

    Returns None when ``key`` is no longer pending (someone else recorded it meanwhile).
    """
    book = book_of(status)
    item = find_item(book, key)
    if item is None:
        return None
    entries: list[dict[str, Any]] = []
    what = describe(item)
    attempts = int(item.get("attempts") or 0)
    sent_to = _bounded(list(item.get("sentTo") or []) + [s for s in result.sent if s not in (item.get("sentTo") or [])],
                       50)
    condition: tuple[bool, str, str] | None = None

    if result.reason == DELIVERED:
        book["pending"] = [p for p in book["pending"] if p.get("key") != key]
        book["delivered"] = _bounded(book["delivered"] + [key], MAX_DELIVERED)
        book["lastDeliveredAt"] = format_time(now)
        where = f" via {result.policy}" if result.policy else ""
        targets = f" to {', '.join(result.targets)}" if result.targets else ""
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        entries.append(timeline_entry(now, "Notified", f"{what} delivered{targets}{where}{tries}", ACTOR))
        condition = (True, DELIVERED, f"{what} delivered{targets}{where}")
    elif result.reason in (NO_POLICY, SUPERSEDED, NO_CHANNELS):
        book["pending"] = [p for p in book["pending"] if p.get("key") != key]
        book["abandoned"] = _bounded(book["abandoned"] + [key], MAX_ABANDONED)
        message = f"{what} not sent: {result.detail}"
        old = find_condition(status.get("conditions"), "Notified") or {}
        # A missing policy is said once on the timeline, not for every notification.
        if result.reason == SUPERSEDED or old.get("reason") != result.reason:
            entries.append(timeline_entry(now, "NotificationSkipped", message, ACTOR))
        if result.reason != SUPERSEDED:
            condition = (False, result.reason, message)
    else:  # FAILED
        error = _clip("; ".join(result.errors) or result.detail or "delivery failed")
        if sent_to:
            item["sentTo"] = sent_to
        if attempts >= settings.max_attempts:
            book["pending"] = [p for p in book["pending"] if p.get("key") != key]
            book["abandoned"] = _bounded(book["abandoned"] + [key], MAX_ABANDONED)
            book["lastError"] = error
            message = f"{what} abandoned after {attempts} failed attempts: {error}"
            entries.append(timeline_entry(now, "NotificationAbandoned", message, ACTOR))
            condition = (False, GAVE_UP, message)
        else:
            retry_at = now + backoff(attempts, settings, rand)
            first_failure = attempts <= 1 or item.get("lastError") != error
            item["lastError"] = error
            item["nextAttemptAt"] = format_time_precise(retry_at)
            book["lastError"] = error
            message = (f"{what} delivery failed (attempt {attempts}): {error}; "
                       f"retrying at {format_time(retry_at)}")
            if first_failure:  # one entry per distinct error, so retries do not flood the timeline
                entries.append(timeline_entry(now, "NotificationFailed", message, ACTOR))
            condition = (False, FAILED, message)

    conditions = status.get("conditions")
    if condition is not None:
        ok, reason, message = condition
        if ok:
            # Still failing elsewhere? Then the condition keeps saying so.
            failing = [p for p in book["pending"] if p.get("lastError")]
            if failing:
                other = failing[0]
                ok, reason, message = False, FAILED, (f"{describe(other)} delivery failing "
                                                      f"(attempt {other.get('attempts')}): {other['lastError']}")
            else:
                book.pop("lastError", None)
        conditions = set_condition(conditions, "Notified", ok, reason, message, now, generation)
    fragment: dict[str, Any] = {"notifications": book}
    if entries:
        fragment["timeline"] = append_entries(status.get("timeline"), entries, timeline_limit)
    if conditions is not status.get("conditions"):
        fragment["conditions"] = conditions
    if "lastError" not in book and (status.get("notifications") or {}).get("lastError"):
        book["lastError"] = None  # merge patch: null removes it
    return fragment


def _bounded(items: list[Any], limit: int) -> list[Any]:
    return items[-limit:]


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_LIMIT else text[:ERROR_LIMIT - 1] + "…"


