"""Business calendar: workdays, hours, holidays (real ones from `holidays`), DST, business-time arithmetic.

Fixed instants only. 2026 facts used below (checked against the `holidays` package):
* UK (England) Spring Bank Holiday and US Memorial Day: Monday 2026-05-25.
* Germany/Berlin: Good Friday 2026-04-03, Easter Monday 2026-04-06.
* Europe/Berlin DST: starts Sunday 2026-03-29 (02:00 CET -> 03:00 CEST), ends Sunday 2026-10-25
  (03:00 CEST -> 02:00 CET).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incident_operator.domain.incident import calendar as calmod
from incident_operator.domain.incident.calendar import BusinessCalendar

BERLIN = ZoneInfo("Europe/Berlin")
LONDON = ZoneInfo("Europe/London")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=zone, fold=fold)


UTC_CAL = BusinessCalendar()
BERLIN_CAL = BusinessCalendar.from_dict(
    {
        "timezone": "Europe/Berlin",
        "workdays": ["Mon", "Tue", "Wed", "Thu", "Fri"],
        "hours": {"start": "09:00", "end": "17:00"},
        "holidays": {"country": "DE", "subdivision": "BE", "extra": ["2026-12-24"]},
    }
)
UK_CAL = BusinessCalendar(timezone="Europe/London", country="GB", subdivision="ENG")
US_CAL = BusinessCalendar(timezone="America/New_York", country="US")
BERLIN_24X7 = BusinessCalendar.from_dict(
    {
        "timezone": "Europe/Berlin",
        "workdays": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
        "hours": {"start": "00:00", "end": "24:00"},
    }
)


# ----------------------------------------------------------------------------- construction


def test_defaults() -> None:
    cal = BusinessCalendar()
    assert cal.timezone == "UTC"
    assert cal.workdays == frozenset({0, 1, 2, 3, 4})
    assert (cal.start, cal.end) == (time(9), time(17))
    assert cal.country is None and cal.subdivision is None
    assert cal.extra_holidays == frozenset()
    assert BusinessCalendar.from_dict({}) == cal
    assert BusinessCalendar.from_dict(None) == cal


def test_from_dict_full() -> None:
    assert BERLIN_CAL.timezone == "Europe/Berlin"
    assert BERLIN_CAL.workdays == frozenset(range(5))
    assert (BERLIN_CAL.start, BERLIN_CAL.end) == (time(9), time(17))
    assert (BERLIN_CAL.country, BERLIN_CAL.subdivision) == ("DE", "BE")
    assert BERLIN_CAL.extra_holidays == frozenset({date(2026, 12, 24)})


def test_is_frozen_and_hashable() -> None:
    with pytest.raises(AttributeError):
        BERLIN_CAL.timezone = "UTC"  # type: ignore[misc]
    assert hash(BERLIN_CAL) == hash(BusinessCalendar.from_dict(BERLIN_CAL.to_dict()))


def test_to_dict_round_trip() -> None:
    for cal in (UTC_CAL, BERLIN_CAL, UK_CAL, US_CAL, BERLIN_24X7):
        assert BusinessCalendar.from_dict(cal.to_dict()) == cal
    assert BERLIN_24X7.to_dict()["hours"] == {"start": "00:00", "end": "24:00"}


def test_workday_names_are_flexible() -> None:
    cal = BusinessCalendar.from_dict({"workdays": ["sunday", "MON", "Tue", "wed", "Thursday"]})
    assert cal.workdays == frozenset({6, 0, 1, 2, 3})
    assert cal.to_dict()["workdays"] == ["Mon", "Tue", "Wed", "Thu", "Sun"]


def test_country_code_is_normalised_and_lower_case_subdivision_accepted() -> None:
    cal = BusinessCalendar.from_dict({"holidays": {"country": "de", "subdivision": "be"}})
    assert (cal.country, cal.subdivision) == ("DE", "BE")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"timezone": "Europe/Berlinn"}, r"timezone: unknown IANA time zone 'Europe/Berlinn'"),
        ({"timezone": ""}, r"timezone"),
        ({"timezone": 5}, r"timezone"),
        (
            {"hours": {"start": "17:00", "end": "09:00"}},
            r"hours\.end \(09:00\) must be after hours\.start \(17:00\)",
        ),
        ({"hours": {"start": "09:00", "end": "09:00"}}, r"hours\.end .* must be after hours\.start"),
        ({"hours": {"start": "9am"}}, r"hours\.start: invalid time of day '9am'"),
        ({"hours": {"end": "25:00"}}, r"hours\.end: invalid time of day '25:00'"),
        ({"hours": {"start": "24:00"}}, r"hours\.start: invalid time of day '24:00'"),
        ({"hours": {"begin": "09:00"}}, r"hours: unknown field\(s\) begin"),
        ({"hours": "9-5"}, r"hours: expected a mapping"),
        ({"workdays": []}, r"workdays: at least one working day"),
        ({"workdays": ["Mon", "Funday"]}, r"workdays\[1\]: invalid weekday 'Funday'"),
        ({"workdays": [1, 2]}, r"workdays\[0\]: expected a weekday name"),
        ({"workdays": "Mon-Fri"}, r"workdays: expected a list"),
        ({"holidays": {"country": "XX"}}, r"holidays\.country: unsupported country code 'XX'"),
        (
            {"holidays": {"country": "DE", "subdivision": "ZZ"}},
            r"holidays\.subdivision: country DE has no subdivision 'ZZ'",
        ),
        ({"holidays": {"subdivision": "BE"}}, r"holidays\.subdivision: set only together with"),
        ({"holidays": {"extra": ["2026-02-30"]}}, r"holidays\.extra\[0\]: invalid date '2026-02-30'"),
        ({"holidays": {"extra": ["2026-12-24", "x"]}}, r"holidays\.extra\[1\]: invalid date 'x'"),
        ({"holidays": {"extra": "2026-12-24"}}, r"holidays\.extra: expected a list"),
        ({"holidays": {"region": "BE"}}, r"holidays: unknown field\(s\) region"),
        ({"timezone": "UTC", "tz": "UTC"}, r"calendar: unknown field\(s\) tz"),
    ],
)
def test_bad_config_raises_naming_the_field(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        BusinessCalendar.from_dict(config)
    assert str(caught.value).startswith("calendar")  # the full path from the config root


def test_error_path_prefix_is_configurable() -> None:
    with pytest.raises(ValueError, match=r"^calendar\.timezone: unknown IANA time zone 'Nowhere'"):
        BusinessCalendar.from_dict({"timezone": "Nowhere"})
    with pytest.raises(ValueError, match=r"^spec\.calendar\.hours\.end "):
        BusinessCalendar.from_dict({"hours": {"end": "08:00"}}, where="spec.calendar")


def test_bad_constructor_args_raise() -> None:
    with pytest.raises(ValueError, match="hours.end"):
        BusinessCalendar(start=time(10), end=time(9))
    with pytest.raises(ValueError, match="timezone"):
        BusinessCalendar(timezone="Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="from_dict|calendar: expected a mapping"):
        BusinessCalendar.from_dict(["UTC"])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- days and holidays


def test_weekends_are_not_business_days() -> None:
    assert UTC_CAL.is_business_day(date(2026, 6, 12))  # Friday
    assert not UTC_CAL.is_business_day(date(2026, 6, 13))  # Saturday
    assert not UTC_CAL.is_business_day(date(2026, 6, 14))  # Sunday
    assert UTC_CAL.is_business_day(date(2026, 6, 15))  # Monday


def test_real_public_holidays() -> None:
    assert not UK_CAL.is_business_day(date(2026, 5, 25))
    assert UK_CAL.holiday_name(date(2026, 5, 25)) == "Spring Bank Holiday"
    assert not US_CAL.is_business_day(date(2026, 5, 25))
    assert US_CAL.holiday_name(date(2026, 5, 25)) == "Memorial Day"
    assert not BERLIN_CAL.is_business_day(date(2026, 4, 3))  # Good Friday
    assert not BERLIN_CAL.is_business_day(date(2026, 4, 6))  # Easter Monday
    # Without a country there are no public holidays.
    assert UTC_CAL.is_business_day(date(2026, 5, 25))
    assert UTC_CAL.holiday_name(date(2026, 5, 25)) is None


def test_subdivision_matters() -> None:
    # International Women's Day (8 March) is a public holiday in Berlin only; in 2027 it is a Monday.
    assert not BERLIN_CAL.is_business_day(date(2027, 3, 8))
    assert BusinessCalendar(timezone="Europe/Berlin", country="DE", subdivision="BY").is_business_day(
        date(2027, 3, 8)
    )


def test_observed_holiday_counts() -> None:
    # Boxing Day 2026 is a Saturday; England observes it on Monday 28 December.
    assert not UK_CAL.is_business_day(date(2026, 12, 28))


def test_extra_holidays() -> None:
    assert not BERLIN_CAL.is_business_day(date(2026, 12, 24))
    assert BERLIN_CAL.holiday_name(date(2026, 12, 24)) == "extra holiday"
    cal = BusinessCalendar.from_dict({"holidays": {"extra": ["2026-06-08"]}})
    assert cal.is_holiday(date(2026, 6, 8))
    assert not cal.is_business_day(date(2026, 6, 8))
    assert cal.is_business_day(date(2026, 6, 9))


def test_holiday_on_a_weekend_changes_nothing() -> None:
    cal = BusinessCalendar.from_dict({"holidays": {"extra": ["2026-06-13"]}})  # Saturday
    assert cal.next_business_day(date(2026, 6, 12)) == date(2026, 6, 15)


def test_next_business_day() -> None:
    assert UTC_CAL.next_business_day(date(2026, 6, 15)) == date(2026, 6, 16)  # Mon -> Tue
    assert UTC_CAL.next_business_day(date(2026, 6, 12)) == date(2026, 6, 15)  # Fri -> Mon
    assert UTC_CAL.next_business_day(date(2026, 6, 13)) == date(2026, 6, 15)  # Sat -> Mon
    assert UK_CAL.next_business_day(date(2026, 5, 22)) == date(2026, 5, 26)  # Fri -> Tue (bank holiday)
    assert US_CAL.next_business_day(date(2026, 5, 22)) == date(2026, 5, 26)
    # Berlin Easter: Thu 2 April -> Tue 7 April (Good Friday and Easter Monday skipped)
    assert BERLIN_CAL.next_business_day(date(2026, 4, 2)) == date(2026, 4, 7)
    assert BERLIN_CAL.nth_business_day(date(2026, 4, 2), 3) == date(2026, 4, 9)


def test_next_business_day_across_new_year_uses_next_years_holidays() -> None:
    # UK: Thu 31 Dec 2026 -> Fri 1 Jan 2027 is New Year's Day -> Mon 4 Jan 2027.
    assert UK_CAL.next_business_day(date(2026, 12, 31)) == date(2027, 1, 4)


def test_dates_not_datetimes() -> None:
    with pytest.raises(TypeError, match="local date"):
        UTC_CAL.is_business_day(utc(2026, 6, 15, 10))  # type: ignore[arg-type]


def test_holiday_cache_is_bounded_lru() -> None:
    info = calmod._holidays_for.cache_info()
    assert info.maxsize is not None and info.maxsize > 0
    UK_CAL.is_business_day(date(2030, 5, 27))
    before = calmod._holidays_for.cache_info().hits
    UK_CAL.is_business_day(date(2030, 5, 28))
    assert calmod._holidays_for.cache_info().hits == before + 1


# ----------------------------------------------------------------------------- hours and DST


def test_end_of_business_day_is_utc_and_local_end() -> None:
    eod = UK_CAL.end_of_business_day(date(2026, 5, 26))
    assert eod == utc(2026, 5, 26, 16)  # 17:00 BST
    assert eod.tzinfo is UTC
    assert eod.astimezone(LONDON).time() == time(17)


def test_business_hours_stay_local_across_berlin_dst() -> None:
    # Winter time (CET, UTC+1) before 29 March, summer time (CEST, UTC+2) after.
    assert BERLIN_CAL.business_hours(date(2026, 3, 27)) == (utc(2026, 3, 27, 8), utc(2026, 3, 27, 16))
    assert BERLIN_CAL.business_hours(date(2026, 3, 30)) == (utc(2026, 3, 30, 7), utc(2026, 3, 30, 15))
    assert BERLIN_CAL.business_hours(date(2026, 10, 23)) == (utc(2026, 10, 23, 7), utc(2026, 10, 23, 15))
    assert BERLIN_CAL.business_hours(date(2026, 10, 26)) == (utc(2026, 10, 26, 8), utc(2026, 10, 26, 16))
    assert BERLIN_CAL.business_hours(date(2026, 3, 29)) is None  # Sunday


def test_is_business_time_boundaries() -> None:
    assert not UTC_CAL.is_business_time(utc(2026, 6, 15, 8, 59, 59))
    assert UTC_CAL.is_business_time(utc(2026, 6, 15, 9))  # opening is inside
    assert UTC_CAL.is_business_time(utc(2026, 6, 15, 16, 59, 59))
    assert not UTC_CAL.is_business_time(utc(2026, 6, 15, 17))  # closing is outside: [start, end)
    assert not UTC_CAL.is_business_time(utc(2026, 6, 13, 12))  # Saturday
    assert not UK_CAL.is_business_time(local(LONDON, 2026, 5, 25, 12))  # bank holiday


def test_is_business_time_accepts_any_aware_datetime_and_uses_local_hours() -> None:
    # 09:30 CEST on Monday 30 March = 07:30 UTC: business time in Berlin, not in UTC.
    assert BERLIN_CAL.is_business_time(utc(2026, 3, 30, 7, 30))
    assert BERLIN_CAL.is_business_time(local(BERLIN, 2026, 3, 30, 9, 30))
    assert not UTC_CAL.is_business_time(utc(2026, 3, 30, 7, 30))
    # 16:30 CET on Friday 27 March = 15:30 UTC: inside; 17:30 CEST on Monday = 15:30 UTC: outside.
    assert BERLIN_CAL.is_business_time(utc(2026, 3, 27, 15, 30))
    assert not BERLIN_CAL.is_business_time(utc(2026, 3, 30, 15, 30))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        UTC_CAL.is_business_time(datetime(2026, 6, 15, 10))
    with pytest.raises(ValueError, match="naive"):
        UTC_CAL.add_business_time(datetime(2026, 6, 15, 10), timedelta(hours=1))


# ----------------------------------------------------------------------------- add_business_time


@pytest.mark.parametrize(
    ("start", "hours", "expected"),
    [
        (utc(2026, 6, 15, 10), 2, utc(2026, 6, 15, 12)),  # within a day
        (utc(2026, 6, 15, 9), 8, utc(2026, 6, 15, 17)),  # exactly a day ends at closing, not next morning
        (utc(2026, 6, 15, 16), 2, utc(2026, 6, 16, 10)),  # across the night
        (utc(2026, 6, 15, 17), 1, utc(2026, 6, 16, 10)),  # from closing time
        (utc(2026, 6, 15, 3), 1, utc(2026, 6, 15, 10)),  # before opening: clock starts at 09:00
        (utc(2026, 6, 12, 16, 30), 1, utc(2026, 6, 15, 9, 30)),  # across the weekend
        (utc(2026, 6, 13, 12), 1, utc(2026, 6, 15, 10)),  # from a Saturday
        (utc(2026, 6, 15, 9), 40, utc(2026, 6, 19, 17)),  # a working week
        (utc(2026, 6, 15, 9), 41, utc(2026, 6, 22, 10)),  # a working week and an hour
    ],
)
def test_add_business_time_nights_and_weekends(start: datetime, hours: float, expected: datetime) -> None:
    assert UTC_CAL.add_business_time(start, timedelta(hours=hours)) == expected


def test_add_business_time_zero_returns_start_in_utc() -> None:
    sat = local(BERLIN, 2026, 6, 13, 12)
    assert BERLIN_CAL.add_business_time(sat, timedelta(0)) == utc(2026, 6, 13, 10)
    assert BERLIN_CAL.add_business_time(sat, timedelta(0)).tzinfo is UTC


def test_add_business_time_skips_public_holidays() -> None:
    # Friday 22 May 16:00 BST + 3 business hours: 1 h Friday, Monday is the Spring Bank Holiday,
    # 2 h on Tuesday -> Tuesday 26 May 11:00 BST.
    result = UK_CAL.add_business_time(local(LONDON, 2026, 5, 22, 16), timedelta(hours=3))
    assert result == local(LONDON, 2026, 5, 26, 11)
    assert result == utc(2026, 5, 26, 10)
    # Berlin Easter: Thursday 2 April 16:00 + 2 bh -> Tuesday 7 April 10:00 CEST.
    assert BERLIN_CAL.add_business_time(local(BERLIN, 2026, 4, 2, 16), timedelta(hours=2)) == local(
        BERLIN, 2026, 4, 7, 10
    )


def test_add_business_time_skips_extra_holidays() -> None:
    # Wednesday 23 Dec 16:00 CET + 2 bh: 24 Dec (extra), 25 + 26 Dec (public), weekend -> Mon 28 10:00.
    assert BERLIN_CAL.add_business_time(local(BERLIN, 2026, 12, 23, 16), timedelta(hours=2)) == local(
        BERLIN, 2026, 12, 28, 10
    )


def test_add_business_time_across_spring_forward() -> None:
    # Fri 27 March 16:00 CET (15:00 UTC) + 2 bh -> Mon 30 March 10:00 CEST (08:00 UTC).
    result = BERLIN_CAL.add_business_time(local(BERLIN, 2026, 3, 27, 16), timedelta(hours=2))
    assert result == utc(2026, 3, 30, 8)
    assert result.astimezone(BERLIN).time() == time(10)


def test_add_business_time_across_fall_back() -> None:
    # Fri 23 Oct 16:00 CEST (14:00 UTC) + 2 bh -> Mon 26 Oct 10:00 CET (09:00 UTC).
    result = BERLIN_CAL.add_business_time(local(BERLIN, 2026, 10, 23, 16), timedelta(hours=2))
    assert result == utc(2026, 10, 26, 9)
    assert result.astimezone(BERLIN).time() == time(10)


def test_24x7_calendar_counts_real_hours_on_dst_days() -> None:
    # The night of 28/29 March has 23 hours in Berlin, the night of 24/25 October 25.
    assert BERLIN_24X7.business_hours(date(2026, 3, 29)) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert BERLIN_24X7.business_time_between(
        local(BERLIN, 2026, 3, 28, 0), local(BERLIN, 2026, 3, 30, 0)
    ) == timedelta(hours=47)
    assert BERLIN_24X7.business_time_between(
        local(BERLIN, 2026, 10, 24, 0), local(BERLIN, 2026, 10, 26, 0)
    ) == timedelta(hours=49)
    # Sunday 29 March 00:00 CET + 4 h real time = 05:00 CEST (02:00-03:00 does not exist).
    result = BERLIN_24X7.add_business_time(local(BERLIN, 2026, 3, 29, 0), timedelta(hours=4))
    assert result.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 29, 5)
    # Across midnight a 24x7 calendar never stops.
    assert BERLIN_24X7.add_business_time(utc(2026, 6, 13, 23), timedelta(hours=2)) == utc(2026, 6, 14, 1)
    assert BERLIN_24X7.is_business_time(utc(2026, 6, 14, 3))


def test_add_business_time_validates_duration() -> None:
    with pytest.raises(ValueError, match="negative"):
        UTC_CAL.add_business_time(utc(2026, 6, 15, 10), timedelta(minutes=-1))
    with pytest.raises(TypeError, match="timedelta"):
        UTC_CAL.add_business_time(utc(2026, 6, 15, 10), 3600)  # type: ignore[arg-type]


def test_business_time_between() -> None:
    assert UTC_CAL.business_time_between(utc(2026, 6, 12, 16), utc(2026, 6, 15, 10)) == timedelta(hours=2)
    assert UTC_CAL.business_time_between(utc(2026, 6, 15, 10), utc(2026, 6, 12, 16)) == timedelta(0)
    assert UTC_CAL.business_time_between(utc(2026, 6, 13), utc(2026, 6, 14)) == timedelta(0)


def test_next_business_time() -> None:
    assert UTC_CAL.next_business_time(utc(2026, 6, 15, 10)) == utc(2026, 6, 15, 10)
    assert UTC_CAL.next_business_time(utc(2026, 6, 12, 17)) == utc(2026, 6, 15, 9)


def test_night_shift_hours_ending_at_midnight() -> None:
    cal = BusinessCalendar.from_dict({"hours": {"start": "20:00", "end": "24:00"}})
    assert cal.end_of_business_day(date(2026, 6, 15)) == utc(2026, 6, 16, 0)
    assert cal.add_business_time(utc(2026, 6, 15, 23), timedelta(hours=2)) == utc(2026, 6, 16, 21)


# ----------------------------------------------------------------------------- properties

CALENDARS = [
    UTC_CAL,
    BERLIN_CAL,
    UK_CAL,
    US_CAL,
    BERLIN_24X7,
    # Sunday-Thursday week with Israeli holidays.
    BusinessCalendar.from_dict(
        {
            "timezone": "Asia/Jerusalem",
            "workdays": ["Sun", "Mon", "Tue", "Wed", "Thu"],
            "holidays": {"country": "IL"},
        }
    ),
    # Half-hour DST shift.
    BusinessCalendar.from_dict(
        {"timezone": "Australia/Lord_Howe", "hours": {"start": "08:30", "end": "18:00"}}
    ),
    # DST transitions at local midnight, 24x7.
    BusinessCalendar.from_dict(
        {
            "timezone": "America/Santiago",
            "workdays": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
            "hours": {"start": "00:00", "end": "24:00"},
        }
    ),
    # Non-whole-hour offset, evening hours to midnight.
    BusinessCalendar.from_dict({"timezone": "Asia/Kathmandu", "hours": {"start": "13:15", "end": "24:00"}}),
]

instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=300))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CALENDARS), instants, durations, durations)
def test_property_add_business_time_lands_in_business_time_and_is_monotonic(
    cal: BusinessCalendar, start: datetime, d1: timedelta, d2: timedelta
) -> None:
    short, long = sorted((d1, d2))
    r_short = cal.add_business_time(start, short)
    r_long = cal.add_business_time(start, long)
    assert start <= r_short <= r_long
    assert r_short.tzinfo is UTC
    for duration, result in ((short, r_short), (long, r_long)):
        if duration > timedelta(0):
            at_closing = any(
                (w := cal.business_hours(day)) is not None and w[1] == result
                for day in (cal.local_date(result) - timedelta(days=1), cal.local_date(result))
            )
            assert cal.is_business_time(result) or at_closing
        # Exactly the requested amount of working time lies between start and result.
        assert cal.business_time_between(start, result) == duration


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(CALENDARS), instants)
def test_property_next_business_day_is_a_later_business_day(cal: BusinessCalendar, moment: datetime) -> None:
    today = cal.local_date(moment)
    nxt = cal.next_business_day(today)
    assert nxt > today
    assert cal.is_business_day(nxt)
    day = today + timedelta(days=1)
    while day < nxt:
        assert not cal.is_business_day(day)
        day += timedelta(days=1)
