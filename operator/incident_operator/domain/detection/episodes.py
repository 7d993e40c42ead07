"""Per-group alert episodes: the state machine shared by the operator and the backtest.

One :class:`EpisodeState` exists per (DetectionRule, group). At every evaluation the caller passes
whether the detector's condition holds (``firing``) and the evaluation time (epoch seconds); the
pure function :func:`step` returns the new state and at most one event::

                 condition true                 true for >= for_s
    Inactive  ------------------->  Pending  --------------------->  Firing
       ^   ^      (event "pending")    |       (event "open", or        |
       |   |                           |        "continue" in cooldown, |
       |   +------- condition false ---+        "regression" in the     |
       |            (no event)                  recovery window)        |
       +---------------------------- condition false -------------------+
                                     (event "cleared")

* ``for_s`` (the rule's ``spec.for``): the condition must hold this long before anything is opened.
  With ``for_s == 0`` the first true evaluation goes straight to Firing.
* ``cooldown_s`` (``spec.cooldown``): after an episode clears, a new firing of the same group within
  this many seconds of the clear does **not** start a new episode; it *continues* the previous one
  (event ``"continue"``) -- one incident for a flapping signal.
* ``recovery_s`` (``spec.recoveryWindow``): once the episode's incident has been resolved (the
  handler calls :func:`mark_resolved`), a firing within this many seconds of the resolution is a
  *regression* of that same incident (event ``"regression"``), not a new incident. After the window
  a firing opens a new episode.

Events: ``None`` (nothing to do), ``"pending"``, ``"open"`` (new episode: open ONE incident),
``"continue"`` (same episode fires again inside the cooldown), ``"regression"`` (same episode fires
again after its incident was resolved, inside the recovery window), ``"cleared"`` (condition
stopped). ``"continue"`` and ``"regression"`` never create a new incident.

The state is a small JSON-serialisable dataclass (``to_dict``/``from_dict`` with camelCase keys) so
the operator can keep it in ``DetectionRule.status`` and survive restarts. No clock is read here:
every time is a plain epoch float passed in by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal, Mapping

__all__ = [
    "INACTIVE",
    "PENDING",
    "FIRING",
    "Event",
    "EpisodeState",
    "step",
    "mark_resolved",
]

INACTIVE = "Inactive"
PENDING = "Pending"
FIRING = "Firing"
_PHASES = (INACTIVE, PENDING, FIRING)

Event = Literal["pending", "open", "continue", "regression", "cleared"] | None


@dataclass(frozen=True)
class EpisodeState:
    """Alert state of one group of one rule.

    ``phase``            Inactive / Pending / Firing.
    ``pending_since``    when the condition became true in the current run (None when Inactive).
    ``episode``          number of episodes opened so far for this group (0 = none yet); together
                         with ``episode_start`` it gives a deterministic incident identity.
    ``episode_start``    when the condition first became true in the current/last episode (the
                         estimate of when impact began), None before the first episode.
    ``opened_at``        when the current/last episode was opened (its "open" event).
    ``last_fired_at``    last evaluation at which the phase was Firing.
    ``cleared_at``       when the condition last stopped while Firing (start of the cooldown).
    ``resolved_at``      when the current/last episode's incident was resolved (start of the
                         recovery window), set by :func:`mark_resolved`.
    ``regressions``      how many times the current episode relapsed after resolution.
    """

    phase: str = INACTIVE
    pending_since: float | None = None
    episode: int = 0
    episode_start: float | None = None
    opened_at: float | None = None
    last_fired_at: float | None = None
    cleared_at: float | None = None
    resolved_at: float | None = None
    regressions: int = 0

    def __post_init__(self) -> None:
        if self.phase not in _PHASES:
            raise ValueError(f"phase must be one of {', '.join(_PHASES)}, got {self.phase!r}")

    @property
    def firing(self) -> bool:
        return self.phase == FIRING

    _KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("phase", "phase"),
        ("pending_since", "pendingSince"),
        ("episode", "episode"),
        ("episode_start", "episodeStart"),
        ("opened_at", "openedAt"),
        ("last_fired_at", "lastFiredAt"),
        ("cleared_at", "clearedAt"),
        ("resolved_at", "resolvedAt"),
        ("regressions", "regressions"),
    )

    def to_dict(self) -> dict[str, Any]:
        """camelCase, JSON-serialisable; ``None`` fields are omitted."""
        out: dict[str, Any] = {}
        for attr, key in self._KEYS:
            value = getattr(self, attr)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "EpisodeState":
        """Inverse of :meth:`to_dict`; tolerant of missing keys (defaults) and unknown keys."""
        if not data:
            return cls()
        kwargs: dict[str, Any] = {}
        for attr, key in cls._KEYS:
            if key in data and data[key] is not None:
                value = data[key]
                if attr == "phase":
                    kwargs[attr] = str(value)
                elif attr in ("episode", "regressions"):
                    kwargs[attr] = int(value)
                else:
                    kwargs[attr] = float(value)
        return cls(**kwargs)


def _check_time(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")


def step(
    state: EpisodeState,
    firing: bool,
    now: float,
    for_s: float,
    cooldown_s: float,
    recovery_s: float = 0.0,
) -> tuple[EpisodeState, Event]:
    """Advance ``state`` by one evaluation at time ``now`` (epoch seconds).

    ``firing`` is the detector's condition at this evaluation. Returns ``(new_state, event)``.
    """
    _check_time("for_s", for_s)
    _check_time("cooldown_s", cooldown_s)
    _check_time("recovery_s", recovery_s)

    if not firing:
        if state.phase == FIRING:
            return replace(state, phase=INACTIVE, pending_since=None, cleared_at=now), "cleared"
        if state.phase == PENDING:
            return replace(state, phase=INACTIVE, pending_since=None), None
        return state, None

    if state.phase == FIRING:
        return replace(state, last_fired_at=now), None

    since = state.pending_since if state.phase == PENDING and state.pending_since is not None else now
    if now - since < for_s:
        if state.phase == PENDING:
            return state, None
        return replace(state, phase=PENDING, pending_since=since), "pending"

    # The condition has held for `for_s`: Firing. Same episode, or a new one?
    fired = replace(state, phase=FIRING, pending_since=since, last_fired_at=now)
    if state.episode > 0:
        if state.resolved_at is not None:
            if now - state.resolved_at <= recovery_s:
                return replace(fired, regressions=state.regressions + 1, resolved_at=None), "regression"
        elif state.cleared_at is not None and now - state.cleared_at <= cooldown_s:
            return fired, "continue"
    return (
        replace(
            fired,
            episode=state.episode + 1,
            episode_start=since,
            opened_at=now,
            cleared_at=None,
            resolved_at=None,
            regressions=0,
        ),
        "open",
    )


def mark_resolved(state: EpisodeState, at: float) -> EpisodeState:
    """Record that the current episode's incident was resolved at ``at`` (starts the recovery window)."""
    _check_time("at", at)
    if state.episode == 0:
        return state
    return replace(state, resolved_at=at)
