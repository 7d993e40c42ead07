"""domain/common: the one time parser and clock, the one duration parser and formatters, conditions and the
status diff."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from incident_operator.domain.common.conditions import condition_is_true, find_condition, set_condition
from incident_operator.domain.common.durations import duration_value, format_age, format_duration
from incident_operator.domain.common.status import status_patch
from incident_operator.domain.common.timeutil import (
    epoch_or_none,
    format_time,
    format_time_precise,
    parse_time,
    time_or_none,
    utcnow,
)

NOW = datetime(2026, 1, 2, 15, 4, 5, 678000, tzinfo=timezone.utc)


# ------------------------------------------------------------------------------------------ time

def test_parse_time_reads_what_kubernetes_and_go_write():
    assert parse_time("2026-01-02T15:04:05Z") == NOW.replace(microsecond=0)
    assert parse_time("2026-01-02T16:04:05+01:00") == NOW.replace(microsecond=0)
    assert parse_time("2026-01-02T15:04:05.678123456Z") == NOW.replace(microsecond=678123)  # nanoseconds
    assert parse_time("2026-01-02t15:04:05z") == NOW.replace(microsecond=0)
    assert parse_time(None) is None and parse_time("") is None


def test_parse_time_refuses_a_zoneless_or_malformed_timestamp_unless_told_it_is_utc():
    with pytest.raises(ValueError, match="no time zone"):
        parse_time("2026-01-02T15:04:05")
    with pytest.raises(ValueError):
        parse_time("yesterday")
    assert parse_time("2015-03-01 12:00:00", assume_utc=True) == datetime(2015, 3, 1, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("value", [None, "", "not a time", "2026-01-02T15:04:05", 42,
                                   ["2026-01-02T15:04:05Z"]])
def test_values_read_back_from_objects_are_none_when_unusable(value):
    assert time_or_none(value) is None and epoch_or_none(value) is None


def test_lenient_readers_agree_with_the_parser():
    assert time_or_none("2026-01-02T15:04:05Z") == parse_time("2026-01-02T15:04:05Z")
    assert epoch_or_none("1970-01-01T00:01:00Z") == 60.0


def test_formats_round_trip():
    assert format_time(NOW) == "2026-01-02T15:04:05Z" and format_time(None) is None
    assert format_time_precise(NOW) == "2026-01-02T15:04:05.678Z"
    assert parse_time(format_time_precise(NOW)) == NOW


def test_the_clock_is_aware_utc():
    now = utcnow()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


# ------------------------------------------------------------------------------------------ durations

@pytest.mark.parametrize("value, expected", [
    ("1h30m", timedelta(minutes=90)), (300, timedelta(minutes=5)), (2.5, timedelta(seconds=2.5)),
    (timedelta(days=1), timedelta(days=1)), ("0", timedelta(0)),
])
def test_duration_value_reads_manifest_and_config_values(value, expected):
    assert duration_value(value) == expected


@pytest.mark.parametrize("value", ["-5m", "5 minutes", True, None, float("inf"), -1, timedelta(seconds=-1)])
def test_duration_value_names_the_field_when_it_refuses(value):
    with pytest.raises(ValueError, match="^spec.cooldown: "):
        duration_value(value, field="spec.cooldown")


def test_format_duration_takes_seconds_or_a_timedelta_and_is_exact():
    assert format_duration(5400) == format_duration(timedelta(minutes=90)) == "1h30m"
    assert format_duration(1.5) == "1s500ms" and format_duration(0) == "0s"
    assert format_duration(93784) == "1d2h3m4s"
    with pytest.raises(ValueError):
        format_duration(-1)


@pytest.mark.parametrize("seconds, text", [
    (5, "5s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h00m"), (7260, "2h01m"),
    (47 * 3600, "47h00m"), (3 * 86400 + 3600, "3d1h"), (-3600, "60m"),
])
def test_format_age_is_a_rounded_human_reading(seconds, text):
    assert format_age(seconds) == text


# ------------------------------------------------------------------------------------------ conditions

def test_last_transition_time_changes_only_when_the_status_does():
    first = set_condition(None, "Ready", True, "Evaluating", "ok", NOW, generation=3)
    assert first == [{"type": "Ready", "status": "True", "reason": "Evaluating", "message": "ok",
                      "lastTransitionTime": "2026-01-02T15:04:05Z", "observedGeneration": 3}]
    later = NOW + timedelta(minutes=5)
    same = set_condition(first, "Ready", True, "Evaluating", "still ok", later, generation=4)
    assert same[0]["lastTransitionTime"] == "2026-01-02T15:04:05Z" and same[0]["message"] == "still ok"
    assert same[0]["observedGeneration"] == 4
    flipped = set_condition(same, "Ready", False, "Invalid", "bad", later)
    assert flipped[0]["lastTransitionTime"] == format_time(later) and flipped[0]["status"] == "False"
    assert first[0]["message"] == "ok"  # inputs are never modified


def test_conditions_are_found_by_type_and_messages_bounded():
    conditions = set_condition([{"type": "Degraded", "status": "False"}], "Ready", "Unknown", "Starting",
                               "x" * 40000, NOW)
    assert [c["type"] for c in conditions] == ["Degraded", "Ready"]
    assert len(conditions[1]["message"]) == 32768
    assert find_condition(conditions, "Degraded") == {"type": "Degraded", "status": "False"}
    assert find_condition(None, "Ready") is None
    assert not condition_is_true(conditions, "Ready") and not condition_is_true(conditions, "Missing")
    assert condition_is_true(set_condition(conditions, "Ready", True, "Ok", "", NOW), "Ready")


# ------------------------------------------------------------------------------------------ status diff

def test_status_patch_is_a_merge_patch_of_top_level_keys():
    old = {"state": "Triggered", "firingCount": 1, "gone": "x", "groups": [{"a": 1}]}
    new = {"state": "Triggered", "firingCount": 2, "groups": [{"a": 1}], "added": True}
    assert status_patch(old, new) == {"firingCount": 2, "gone": None, "added": True}
    assert status_patch(new, new) == {}


def test_lifecycle_keeps_a_plain_import_of_the_moved_status_diff():
    from incident_operator.domain.incident import lifecycle

    assert lifecycle.status_patch is status_patch
