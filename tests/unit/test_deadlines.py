"""Response deadlines, resolution targets, deadline policy config and the escalation schedule.

Fixed instants only. 2026 facts: Monday 2026-05-25 is the UK Spring Bank Holiday and US Memorial
Day; Europe/Berlin switches to CEST on Sunday 2026-03-29 and back to CET on Sunday 2026-10-25.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incident_operator.domain.common.durations import duration_value as parse_duration
from incident_operator.domain.common.durations import format_duration
from incident_operator.domain.incident.calendar import BusinessCalendar
from incident_operator.domain.incident.deadlines import (
    DEFAULT_CALENDAR,
    DEFAULT_POLICY,
    DeadlinePolicy,
    DeadlineRule,
    escalation_due_at,
    escalation_level_due,
    next_escalation_at,
    resolution_target,
    response_deadline,
)

BERLIN = ZoneInfo("Europe/Berlin")
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=zone, fold=fold)


UTC_CAL = BusinessCalendar()
UK_CAL = BusinessCalendar.from_dict(
    {"timezone": "Europe/London", "holidays": {"country": "GB", "subdivision": "ENG"}}
)
US_CAL = BusinessCalendar.from_dict({"timezone": "America/New_York", "holidays": {"country": "US"}})
BERLIN_CAL = BusinessCalendar.from_dict(
    {"timezone": "Europe/Berlin", "holidays": {"country": "DE", "subdivision": "BE", "extra": ["2026-12-24"]}}
)
EXTRA_CAL = BusinessCalendar.from_dict({"timezone": "UTC", "holidays": {"extra": ["2026-06-08"]}})


# ----------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("1d", timedelta(days=1)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("1500ms", timedelta(seconds=1.5)),
        (" 5m ", timedelta(minutes=5)),
        ("0s", timedelta(0)),
        ("0", timedelta(0)),
        (300, timedelta(minutes=5)),
        (2.5, timedelta(seconds=2.5)),
        (timedelta(minutes=7), timedelta(minutes=7)),
    ],
)
def test_parse_duration(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["", "30", "m", "1x", "1m1h", "1h1h", "-5m", "5 minutes", "1e3s", "PT5M", "1.5h", "1h 30m", True, None],
)
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="^escalationInterval.P1: "):
        parse_duration(text, field="escalationInterval.P1")  # type: ignore[arg-type]


def test_parse_duration_rejects_overflow() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_duration("999999999999d")


@pytest.mark.parametrize("seconds", [0, 1, 1.5, 0.25, 59, 60, 90, 3600, 5400, 86400, 90061])
def test_format_duration_round_trip(seconds: float) -> None:
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    assert format_duration(timedelta(seconds=1.5)) == "1s500ms"


def test_duration_syntax_is_the_shared_one() -> None:
    """Config durations use the same language as manifest durations (domain.durations)."""
    from incident_operator.domain.common import durations

    for text in ("0", "0s", "30s", "10m", "1h30m", "1d", "1500ms"):
        assert parse_duration(text) == timedelta(seconds=durations.parse_duration(text))


# ----------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("text", "kind", "canonical"),
    [
        ("30m", "elapsed", "30m"),
        ("2h", "elapsed", "2h"),
        ("90s", "elapsed", "1m30s"),
        ("16bh", "businessHours", "16bh"),
        ("1.5bh", "businessHours", "1.5bh"),
        ("nextBusinessDay", "businessDays", "nextBusinessDay"),
        ("NextBusinessDay", "businessDays", "nextBusinessDay"),
        ("1bd", "businessDays", "nextBusinessDay"),
        ("3bd", "businessDays", "3bd"),
        ("3 businessDays", "businessDays", "3bd"),
        ("1 businessDay", "businessDays", "nextBusinessDay"),
    ],
)
def test_rule_forms(text: str, kind: str, canonical: str) -> None:
    rule = DeadlineRule.parse(text)
    assert rule.kind == kind
    assert str(rule) == canonical
    assert DeadlineRule.parse(str(rule)) == rule


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", r"response\.P3: invalid deadline 'soon'"),
        ("0bd", r"response\.P3: business days must be between 1 and 366"),
        ("1000bd", r"response\.P3: business days must be between 1 and 366"),
        ("100000bh", r"response\.P3: business hours must be at most"),
        ("2 hours", r"response\.P3: invalid deadline"),
    ],
)
def test_rule_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DeadlineRule.parse(text, field="response.P3")


# ----------------------------------------------------------------------------- policy config


def test_default_policy_matches_the_support_table() -> None:
    assert DEFAULT_POLICY.to_dict() == {
        "response": {"P1": "5m", "P2": "30m", "P3": "2h", "P4": "nextBusinessDay"},
        "resolution": {"P1": "4h", "P2": "8h", "P3": "3bd", "P4": "5bd"},
        "escalationInterval": {"P1": "5m", "P2": "15m", "P3": "30m", "P4": "4h"},
        "maxEscalationLevel": 3,
    }
    assert DeadlinePolicy.from_dict(None) == DEFAULT_POLICY
    assert DeadlinePolicy.from_dict({}) == DEFAULT_POLICY
    assert DEFAULT_CALENDAR == BusinessCalendar()


def test_policy_from_dict_overrides_merge_with_defaults() -> None:
    policy = DeadlinePolicy.from_dict(
        {
            "response": {"P3": "4bh", "p4": "2bd"},
            "resolution": {"P1": "2h"},
            "escalationInterval": {"P1": "2m"},
            "maxEscalationLevel": 5,
        }
    )
    assert str(policy.response_rule("P3")) == "4bh"
    assert str(policy.response_rule("P4")) == "2bd"
    assert str(policy.response_rule("P2")) == "30m"  # default kept
    assert str(policy.resolution_rule("P1")) == "2h"
    assert policy.escalation_interval_for("P1") == timedelta(minutes=2)
    assert policy.escalation_interval_for("P4") == timedelta(hours=4)
    assert policy.max_escalation_level == 5
    assert DeadlinePolicy.from_dict(policy.to_dict()) == policy


def test_policy_is_frozen_and_read_only() -> None:
    with pytest.raises(AttributeError):
        DEFAULT_POLICY.max_escalation_level = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        DEFAULT_POLICY.response["P1"] = DeadlineRule.parse("1m")  # type: ignore[index]


def test_policy_constructor_accepts_strings_and_partials() -> None:
    policy = DeadlinePolicy(response={"P2": "10m"}, escalation_interval={"P2": timedelta(minutes=1)})
    assert policy.response_rule("P2").duration == timedelta(minutes=10)
    assert policy.escalation_interval_for("P2") == timedelta(minutes=1)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"response": {"P2": "soon"}}, r"response\.P2: invalid deadline 'soon'"),
        ({"resolution": {"P3": "three days"}}, r"resolution\.P3: invalid deadline"),
        ({"response": {"P5": "1h"}}, r"response: unknown priority key 'P5'"),
        ({"response": ["5m"]}, r"response: expected a mapping"),
        ({"escalationInterval": {"P1": "0s"}}, r"escalationInterval\.P1: must be greater than zero"),
        ({"escalationInterval": {"P2": "nextBusinessDay"}}, r"escalationInterval\.P2: invalid duration"),
        ({"escalationInterval": {"Px": "5m"}}, r"escalationInterval: unknown priority key 'Px'"),
        ({"escalationInterval": "5m"}, r"escalationInterval: expected a mapping"),
        ({"maxEscalationLevel": -1}, r"maxEscalationLevel: expected an integer >= 0"),
        ({"maxEscalationLevel": "3"}, r"maxEscalationLevel: expected an integer >= 0"),
        ({"maxEscalationLevel": True}, r"maxEscalationLevel"),
        ({"responce": {}}, r"deadlines: unknown field\(s\) responce"),
    ],
)
def test_bad_policy_config_raises_naming_the_field(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        DeadlinePolicy.from_dict(config)
    assert str(caught.value).startswith("deadlines")  # the full path from the config root


def test_policy_error_path_is_rooted() -> None:
    with pytest.raises(ValueError, match=r"^deadlines\.response\.P2: invalid deadline 'soon'"):
        DeadlinePolicy.from_dict({"response": {"P2": "soon"}})
    with pytest.raises(ValueError, match=r"^deadlines\.maxEscalationLevel: "):
        DeadlinePolicy.from_dict({"maxEscalationLevel": -1})


# ----------------------------------------------------------------------------- response deadlines


def test_p1_must_be_acknowledged_within_five_minutes() -> None:
    detected = utc(2026, 6, 13, 3, 0)  # Saturday night: elapsed time, the calendar does not matter
    assert response_deadline("P1", detected, DEFAULT_POLICY, UK_CAL) == detected + timedelta(minutes=5)


def test_p2_deadline_is_detection_plus_30_minutes() -> None:
    detected = utc(2026, 6, 15, 10, 7, 13)
    assert response_deadline("P2", detected, DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 15, 10, 37, 13)
    # Outside business hours too: P2 is 24x7.
    late_sunday = utc(2026, 6, 14, 23, 50)
    assert response_deadline("P2", late_sunday, DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 15, 0, 20)


def test_p3_deadline_is_detection_plus_two_hours() -> None:
    assert response_deadline("P3", utc(2026, 6, 12, 16), DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 12, 18)


def test_defaults_when_policy_and_calendar_are_omitted() -> None:
    assert response_deadline("P2", utc(2026, 6, 15, 10)) == utc(2026, 6, 15, 10, 30)
    assert response_deadline("P4", utc(2026, 6, 15, 10)) == utc(2026, 6, 16, 17)


def test_output_is_utc_for_any_aware_input() -> None:
    result = response_deadline("P2", local(BERLIN, 2026, 6, 15, 12), DEFAULT_POLICY, BERLIN_CAL)
    assert result.tzinfo is UTC
    assert result == utc(2026, 6, 15, 10, 30)


def test_naive_detection_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        response_deadline("P2", datetime(2026, 6, 15, 10))


def test_unknown_priority_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid priority"):
        response_deadline("P0", utc(2026, 6, 15, 10))


def test_p4_monday_morning_is_due_tuesday_end_of_day() -> None:
    assert response_deadline("P4", utc(2026, 6, 15, 10), DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 16, 17)
    # Before opening on Monday: still the *next* business day (the local date is what counts).
    assert response_deadline("P4", utc(2026, 6, 15, 2), DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 16, 17)
    # Monday 23:59 as well.
    assert response_deadline("P4", utc(2026, 6, 15, 23, 59), DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 16, 17)


def test_p4_weekend_is_due_monday_end_of_day() -> None:
    assert response_deadline("P4", utc(2026, 6, 12, 18), DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 15, 17)
    assert response_deadline("P4", utc(2026, 6, 13, 12), DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 15, 17)
    assert response_deadline("P4", utc(2026, 6, 14, 23), DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 15, 17)


def test_p4_friday_evening_before_uk_bank_holiday_is_due_tuesday() -> None:
    detected = local(LONDON, 2026, 5, 22, 18)  # Friday 18:00 BST; Monday 25 May is a bank holiday
    due = response_deadline("P4", detected, DEFAULT_POLICY, UK_CAL)
    assert due == local(LONDON, 2026, 5, 26, 17)
    assert due == utc(2026, 5, 26, 16)


def test_p4_friday_evening_before_memorial_day_is_due_tuesday() -> None:
    detected = local(NEW_YORK, 2026, 5, 22, 18)  # 22:00 UTC
    assert response_deadline("P4", detected, DEFAULT_POLICY, US_CAL) == local(NEW_YORK, 2026, 5, 26, 17)


def test_p4_uses_the_local_date_not_the_utc_date() -> None:
    # Thursday 21 May 21:00 EDT is already Friday 01:00 UTC; the local date (Thursday) counts,
    # so the deadline is Friday 17:00 EDT (by the UTC date it would have been Tuesday).
    detected = local(NEW_YORK, 2026, 5, 21, 21)
    assert response_deadline("P4", detected, DEFAULT_POLICY, US_CAL) == local(NEW_YORK, 2026, 5, 22, 17)


def test_p4_friday_evening_before_an_extra_holiday_is_due_tuesday() -> None:
    # Monday 8 June 2026 is configured as an extra holiday.
    assert response_deadline("P4", utc(2026, 6, 5, 18), DEFAULT_POLICY, EXTRA_CAL) == utc(2026, 6, 9, 17)
    # ... and on the Berlin calendar, Wednesday 23 December: 24 (extra), 25, 26 (public), weekend.
    assert response_deadline("P4", local(BERLIN, 2026, 12, 23, 11), DEFAULT_POLICY, BERLIN_CAL) == local(
        BERLIN, 2026, 12, 28, 17
    )


def test_p4_across_dst_is_end_of_day_local_time() -> None:
    # Friday 27 March (CET) -> Monday 30 March 17:00 CEST = 15:00 UTC.
    due = response_deadline("P4", local(BERLIN, 2026, 3, 27, 12), DEFAULT_POLICY, BERLIN_CAL)
    assert due == utc(2026, 3, 30, 15)
    assert due.astimezone(BERLIN).time() == time(17)
    # Friday 23 October (CEST) -> Monday 26 October 17:00 CET = 16:00 UTC.
    due = response_deadline("P4", local(BERLIN, 2026, 10, 23, 12), DEFAULT_POLICY, BERLIN_CAL)
    assert due == utc(2026, 10, 26, 16)
    assert due.astimezone(BERLIN).time() == time(17)


def test_elapsed_deadlines_across_dst_are_real_time() -> None:
    # Sunday 29 March 01:50 CET + 30 min = 03:20 CEST (02:00-03:00 local does not exist).
    due = response_deadline("P2", local(BERLIN, 2026, 3, 29, 1, 50), DEFAULT_POLICY, BERLIN_CAL)
    assert due == utc(2026, 3, 29, 1, 20)
    assert due.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 29, 3, 20)
    # Sunday 25 October 02:50 CEST (first pass) + 30 min = 02:20 CET (second pass).
    due = response_deadline("P2", local(BERLIN, 2026, 10, 25, 2, 50, fold=0), DEFAULT_POLICY, BERLIN_CAL)
    assert due == utc(2026, 10, 25, 1, 20)
    assert due.astimezone(BERLIN).utcoffset() == timedelta(hours=1)
    # P3 (2 h) detected 01:30 CEST on 25 October: 2 real hours later it is 02:30 CET, not 03:30.
    due = response_deadline("P3", local(BERLIN, 2026, 10, 25, 1, 30), DEFAULT_POLICY, BERLIN_CAL)
    assert due.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 10, 25, 2, 30)


def test_business_hours_response_rule() -> None:
    policy = DeadlinePolicy.from_dict({"response": {"P3": "4bh"}})
    # Friday 15:00 BST + 4 bh: 2 h Friday, Monday bank holiday, 2 h Tuesday -> Tuesday 11:00 BST.
    assert response_deadline("P3", local(LONDON, 2026, 5, 22, 15), policy, UK_CAL) == local(
        LONDON, 2026, 5, 26, 11
    )


# ----------------------------------------------------------------------------- resolution targets


def test_default_resolution_targets() -> None:
    mon = utc(2026, 6, 15, 10)
    assert resolution_target("P1", mon, DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 15, 14)
    assert resolution_target("P2", mon, DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 15, 18)
    assert resolution_target("P3", mon, DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 18, 17)  # Thursday
    assert resolution_target("P4", mon, DEFAULT_POLICY, UTC_CAL) == utc(2026, 6, 22, 17)  # next Monday


def test_resolution_business_days_skip_holidays() -> None:
    # Thursday 21 May: 3 business days after -> Fri 22, (Mon 25 bank holiday), Tue 26, Wed 27.
    assert resolution_target("P3", local(LONDON, 2026, 5, 21, 12), DEFAULT_POLICY, UK_CAL) == local(
        LONDON, 2026, 5, 27, 17
    )


# ----------------------------------------------------------------------------- escalation

DEADLINE = utc(2026, 6, 15, 10, 30)
FIVE = timedelta(minutes=5)
TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (DEADLINE - timedelta(hours=1), 0),
        (DEADLINE - TICK, 0),
        (DEADLINE, 1),
        (DEADLINE + TICK, 1),
        (DEADLINE + FIVE - TICK, 1),
        (DEADLINE + FIVE, 2),
        (DEADLINE + 2 * FIVE - TICK, 2),
        (DEADLINE + 2 * FIVE, 3),
        (DEADLINE + 3 * FIVE, 3),  # capped
        (DEADLINE + timedelta(days=30), 3),
    ],
)
def test_escalation_level_at_and_around_due_times(now: datetime, expected: int) -> None:
    assert escalation_level_due(DEADLINE, False, now, FIVE, 3) == expected


def test_acknowledged_incident_does_not_escalate() -> None:
    assert escalation_level_due(DEADLINE, True, DEADLINE + timedelta(hours=1), FIVE, 3) == 0


def test_max_level_zero_disables_escalation() -> None:
    assert escalation_level_due(DEADLINE, False, DEADLINE + timedelta(hours=1), FIVE, 0) == 0
    assert next_escalation_at(DEADLINE, 0, FIVE, 0) is None


def test_escalation_accepts_mixed_time_zones() -> None:
    now = (DEADLINE + FIVE).astimezone(BERLIN)
    assert escalation_level_due(DEADLINE, False, now, FIVE, 3) == 2


def test_next_escalation_at() -> None:
    assert next_escalation_at(DEADLINE, 0, FIVE, 3) == DEADLINE
    assert next_escalation_at(DEADLINE, 1, FIVE, 3) == DEADLINE + FIVE
    assert next_escalation_at(DEADLINE, 2, FIVE, 3) == DEADLINE + 2 * FIVE
    assert next_escalation_at(DEADLINE, 3, FIVE, 3) is None
    assert next_escalation_at(DEADLINE, 7, FIVE, 3) is None
    in_berlin = next_escalation_at(DEADLINE.astimezone(BERLIN), 1, FIVE, 3)
    assert in_berlin is not None and in_berlin.tzinfo is UTC
    assert escalation_due_at(DEADLINE, 1, FIVE) == DEADLINE
    assert escalation_due_at(DEADLINE, 4, FIVE) == DEADLINE + 3 * FIVE


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: escalation_level_due(DEADLINE, False, DEADLINE, timedelta(0), 3), r"interval: must be"),
        (lambda: escalation_level_due(DEADLINE, False, DEADLINE, FIVE, -1), r"max_level: expected"),
        (lambda: escalation_level_due(DEADLINE, False, datetime(2026, 6, 15), FIVE, 3), r"now: naive"),
        (lambda: escalation_level_due(datetime(2026, 6, 15), False, DEADLINE, FIVE, 3), r"deadline: naive"),
        (lambda: next_escalation_at(DEADLINE, -1, FIVE, 3), r"current_level: expected an integer >= 0"),
        (lambda: next_escalation_at(DEADLINE, 0, -FIVE, 3), r"interval: must be a positive"),
        (lambda: escalation_due_at(DEADLINE, 0, FIVE), r"level: expected an integer >= 1"),
    ],
)
def test_escalation_argument_errors(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        call()


def test_escalation_with_policy_intervals() -> None:
    policy = DEFAULT_POLICY
    deadline = response_deadline("P2", utc(2026, 6, 15, 10), policy)
    interval = policy.escalation_interval_for("P2")
    max_level = policy.max_escalation_level
    assert escalation_level_due(deadline, False, utc(2026, 6, 15, 10, 45), interval, max_level) == 2
    assert next_escalation_at(deadline, 2, interval, policy.max_escalation_level) == utc(2026, 6, 15, 11, 0)


# ----------------------------------------------------------------------------- properties

CALENDARS = [UTC_CAL, UK_CAL, US_CAL, BERLIN_CAL, EXTRA_CAL]
POLICIES = [
    DEFAULT_POLICY,
    DeadlinePolicy.from_dict(
        {
            "response": {"P1": "0s", "P2": "1bh", "P3": "16bh", "P4": "3bd"},
            "resolution": {"P1": "1d", "P2": "2bd", "P3": "40bh", "P4": "20bd"},
        }
    ),
]
instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["P1", "P2", "P3", "P4"]),
    instants,
    st.sampled_from(POLICIES),
    st.sampled_from(CALENDARS),
)
def test_property_deadlines_never_before_detection(
    priority: str, detected: datetime, policy: DeadlinePolicy, cal: BusinessCalendar
) -> None:
    due = response_deadline(priority, detected, policy, cal)
    target = resolution_target(priority, detected, policy, cal)
    assert due >= detected
    assert target >= detected
    assert due.tzinfo is UTC and target.tzinfo is UTC
    rule = policy.response_rule(priority)
    if rule.kind == "businessDays":
        # Always the end of working hours, local time, on a business day after the detection date.
        local_due = due.astimezone(cal.zone)
        assert local_due.time() == cal.end
        assert cal.is_business_day(local_due.date())
        assert local_due.date() > cal.local_date(detected)


@settings(max_examples=300, deadline=None)
@given(
    instants,
    st.lists(
        st.timedeltas(min_value=timedelta(hours=-2), max_value=timedelta(days=2)), min_size=2, max_size=6
    ),
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(hours=6)),
    st.integers(min_value=0, max_value=6),
)
def test_property_escalation_level_is_monotonic_bounded_and_matches_schedule(
    deadline: datetime, offsets: list[timedelta], interval: timedelta, max_level: int
) -> None:
    nows = sorted(deadline + o for o in offsets)
    levels = [escalation_level_due(deadline, False, now, interval, max_level) for now in nows]
    assert levels == sorted(levels)
    assert all(0 <= level <= max_level for level in levels)
    for now, level in zip(nows, levels, strict=True):
        nxt = next_escalation_at(deadline, level, interval, max_level)
        if nxt is None:
            assert level == max_level
        else:
            # The next level is not due yet, and is due exactly at its due time.
            assert now < nxt
            assert escalation_level_due(deadline, False, nxt, interval, max_level) == level + 1
            assert escalation_level_due(deadline, False, nxt - TICK, interval, max_level) == level
