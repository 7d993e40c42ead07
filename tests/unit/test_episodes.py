"""Unit tests for incident_operator.domain.detection.episodes (pure state machine, fixed clock)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incident_operator.domain.detection.episodes import (
    FIRING,
    INACTIVE,
    PENDING,
    EpisodeState,
    mark_resolved,
    step,
)

T0 = 1_700_000_000.0


def run(seq, for_s=0.0, cooldown_s=0.0, recovery_s=0.0, state=None):
    """Feed (time offset, firing) pairs; return the final state and the events."""
    state = state or EpisodeState()
    events = []
    for dt, firing in seq:
        state, ev = step(state, firing, T0 + dt, for_s, cooldown_s, recovery_s)
        events.append(ev)
    return state, events


def test_for_zero_opens_on_first_true_evaluation():
    s, events = run([(0, False), (60, True), (120, True), (180, False), (240, False)])
    assert events == [None, "open", None, "cleared", None]
    assert s.phase == INACTIVE and s.episode == 1
    assert s.episode_start == T0 + 60 and s.opened_at == T0 + 60
    assert s.cleared_at == T0 + 180 and s.last_fired_at == T0 + 120


def test_for_waits_in_pending_then_opens():
    s, events = run([(0, True), (120, True), (299, True), (300, True), (360, True)], for_s=300)
    assert events == ["pending", None, None, "open", None]
    assert s.phase == FIRING
    assert s.episode_start == T0  # impact began when the condition first held
    assert s.opened_at == T0 + 300


def test_pending_that_stops_opens_nothing():
    s, events = run([(0, True), (60, True), (120, False), (180, True)], for_s=300)
    assert events == ["pending", None, None, "pending"]
    assert s.phase == PENDING and s.episode == 0
    assert s.pending_since == T0 + 180  # the sustain clock restarted


def test_cooldown_continues_the_previous_episode():
    seq = [(0, True), (60, False), (360, True), (420, False)]
    s, events = run(seq, cooldown_s=600)
    assert events == ["open", "cleared", "continue", "cleared"]
    assert s.episode == 1 and s.episode_start == T0


def test_after_cooldown_a_new_episode_opens():
    seq = [(0, True), (60, False), (661, True)]
    s, events = run(seq, cooldown_s=600)
    assert events == ["open", "cleared", "open"]
    assert s.episode == 2 and s.episode_start == T0 + 661


def test_cooldown_boundary_is_inclusive():
    _, events = run([(0, True), (60, False), (660, True)], cooldown_s=600)
    assert events[-1] == "continue"


def test_for_applies_to_continuations_too():
    s, events = run([(0, True), (60, True), (120, False), (180, True), (240, True)], for_s=60, cooldown_s=600)
    assert events == ["pending", "open", "cleared", "pending", "continue"]
    assert s.episode == 1


def test_recovery_window_turns_a_relapse_into_a_regression():
    s, events = run([(0, True), (60, False)], cooldown_s=0)
    s = mark_resolved(s, T0 + 100)
    s, ev = step(s, True, T0 + 1000, 0, 0, recovery_s=3600)
    assert ev == "regression"
    assert s.episode == 1 and s.regressions == 1 and s.phase == FIRING


def test_relapse_after_recovery_window_is_a_new_episode():
    s, _ = run([(0, True), (60, False)])
    s = mark_resolved(s, T0 + 100)
    s, ev = step(s, True, T0 + 100 + 3601, 0, 0, recovery_s=3600)
    assert ev == "open" and s.episode == 2 and s.regressions == 0 and s.resolved_at is None


def test_resolution_outranks_cooldown():
    """Once the incident is resolved, the cooldown no longer merges: regression or new episode."""
    s, _ = run([(0, True), (60, False)])
    s = mark_resolved(s, T0 + 70)
    s2, ev = step(s, True, T0 + 120, 0, cooldown_s=600, recovery_s=0)
    assert ev == "open"
    s3, ev = step(s, True, T0 + 120, 0, cooldown_s=600, recovery_s=600)
    assert ev == "regression"


def test_mark_resolved_without_episode_is_a_no_op():
    assert mark_resolved(EpisodeState(), T0) == EpisodeState()


def test_state_round_trips_through_json():
    s, _ = run([(0, True), (300, True), (360, False)], for_s=300)
    s = mark_resolved(s, T0 + 400)
    d = s.to_dict()
    assert "phase" in d and "episodeStart" in d and "resolvedAt" in d
    again = EpisodeState.from_dict(json.loads(json.dumps(d)))
    assert again == s
    assert EpisodeState.from_dict(None) == EpisodeState()
    assert EpisodeState.from_dict({}) == EpisodeState()
    assert EpisodeState().to_dict() == {"phase": INACTIVE, "episode": 0, "regressions": 0}


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="phase must be one of"):
        EpisodeState(phase="Weird")
    with pytest.raises(ValueError, match="for_s"):
        step(EpisodeState(), True, T0, -1, 0)
    with pytest.raises(ValueError, match="cooldown_s"):
        step(EpisodeState(), True, T0, 0, float("nan"))


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(min_value=1, max_value=400), st.booleans()), max_size=60),
    for_s=st.sampled_from([0, 60, 300]),
    cooldown_s=st.sampled_from([0, 120, 900]),
)
def test_property_events_are_consistent(steps, for_s, cooldown_s):
    state, t = EpisodeState(), T0
    opened = 0
    was_firing = False
    for dt, firing in steps:
        t += dt
        state, ev = step(state, firing, t, for_s, cooldown_s)
        assert EpisodeState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
        if ev == "open":
            opened += 1
            assert not was_firing
        if ev in ("open", "continue"):
            assert state.phase == FIRING and state.pending_since is not None
            assert t - state.pending_since >= for_s
        if ev == "cleared":
            assert was_firing and state.phase == INACTIVE
        if state.phase == FIRING:
            assert firing
        if not firing:
            assert state.phase == INACTIVE
        was_firing = state.phase == FIRING
    assert state.episode == opened
