"""Business calendar: working days, working hours, time zone and public holidays.

A :class:`BusinessCalendar` answers "is this a working day / working time?" and "what instant is
N working hours after this one?". It is pure: no clock is read, every instant is a parameter.

Conventions
-----------
* Instants in and out are timezone-aware ``datetime`` objects. Any aware datetime is accepted;
  every datetime returned is in UTC. Naive datetimes are refused with ``ValueError`` (a naive
  timestamp is a bug waiting for a DST change).
* Dates (``datetime.date``) are *local* calendar dates in the calendar's ``timezone``.
* Working hours are a half-open interval of local wall-clock time ``[start, end)`` on every
  business day; they stay 09:00-17:00 local across DST changes (so in UTC they move by an hour).
  All arithmetic on durations is done in UTC, i.e. on real elapsed time.
* ``end`` may be given as ``"24:00"`` (stored as ``time(0)``): working hours then run to the
  local midnight at the end of the day. ``start=00:00, end=24:00`` with all seven workdays is a
  24x7 calendar.
* A business day is a weekday listed in ``workdays`` that is neither a public holiday of
  ``country``/``subdivision`` (from the ``holidays`` package, "observed" days included) nor one of
  ``extra_holidays``.

Config form (``BusinessCalendar.from_dict``; every key optional)::

    timezone: Europe/Berlin          # IANA name; default UTC
    workdays: [Mon, Tue, Wed, Thu, Fri]   # names or 3-letter abbreviations; default Mon-Fri
    hours: {start: "09:00", end: "17:00"} # local; end after start, or "24:00"
    holidays:
      country: DE                    # ISO 3166 code known to `holidays`; default none
      subdivision: BE                # optional, e.g. state/province code
      extra: ["2026-12-24", "2026-12-31"]   # explicit closure days (ISO dates)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as _holidays_pkg

__all__ = ["BusinessCalendar", "WEEKDAY_NAMES", "parse_weekday", "parse_clock"]

#: Canonical 3-letter weekday names, index = ``date.weekday()`` (Monday = 0).
WEEKDAY_NAMES: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

#: How far ahead a search for the next business day / working window may go before we give up
#: (a calendar that is closed for this long is a configuration error, not a long weekend).
_MAX_SEARCH_DAYS = 3 * 366
#: Upper bound on the length of ``add_business_time`` walks (in local calendar days).
_MAX_WALK_DAYS = 50 * 366

_CLOCK_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


def parse_weekday(value: Any, *, field: str = "workdays") -> int:
    """``"Mon"``/``"monday"`` (any case) -> 0 .. ``"Sun"`` -> 6. Ints 0..6 pass through."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        for index, full in enumerate(_FULL_WEEKDAY_NAMES):
            if key == full or key == full[:3]:
                return index
    raise ValueError(
        f"{field}: invalid weekday {value!r}; expected one of {', '.join(WEEKDAY_NAMES)} (or full names)"
    )


def parse_clock(value: Any, *, field: str, allow_24: bool = False) -> time:
    """``"09:00"``, ``"9:30"``, ``"17:00:00"`` -> ``time``. ``"24:00"`` -> ``time(0)`` if allowed."""
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        match = _CLOCK_RE.match(value)
        if match:
            hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
            if allow_24 and (hour, minute, second) == (24, 0, 0):
                return time(0)
            if hour < 24 and minute < 60 and second < 60:
                return time(hour, minute, second)
    raise ValueError(
        f"{field}: invalid time of day {value!r}; expected HH:MM (24-hour clock"
        + (', or "24:00" for midnight at the end of the day)' if allow_24 else ")")
    )


def _parse_iso_date(value: Any, *, field: str) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"{field}: expected a date (YYYY-MM-DD), got a datetime {value!r}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{field}: invalid date {value!r}; expected YYYY-MM-DD")


@functools.lru_cache(maxsize=128)
def _holidays_for(country: str, subdivision: str | None, year: int) -> _holidays_pkg.HolidayBase:
    """The ``holidays`` object for one (country, subdivision, year); cached, bounded.

    ``expand=False`` so that a lookup can never grow the cached object behind our back.
    Raises ``NotImplementedError`` (from ``holidays``) for unknown countries/subdivisions.
    """
    return _holidays_pkg.country_holidays(country, subdiv=subdivision, years=year, expand=False)


def _require_aware(dt: datetime, name: str) -> None:
    if not isinstance(dt, datetime):
        raise TypeError(f"{name}: expected a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime {dt.isoformat()}; pass a timezone-aware datetime")


@dataclass(frozen=True)
class BusinessCalendar:
    """Working days and hours in one time zone, with public and extra holidays.

    ``workdays`` holds ``date.weekday()`` numbers (Monday = 0); names are accepted and converted.
    ``start``/``end`` are local wall-clock times; ``end == time(0)`` means 24:00.
    ``country`` ``None`` means no public holidays (``extra_holidays`` still apply).
    """

    timezone: str = "UTC"
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    start: time = time(9, 0)
    end: time = time(17, 0)
    country: str | None = None
    subdivision: str | None = None
    extra_holidays: frozenset[date] = field(default_factory=frozenset)

    # ------------------------------------------------------------------ construction / validation

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)

        if not isinstance(self.timezone, str) or not self.timezone.strip():
            raise ValueError(f"timezone: expected an IANA time zone name, got {self.timezone!r}")
        try:
            ZoneInfo(self.timezone.strip())  # `zone` builds it again: ZoneInfo keeps one instance per name
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"timezone: unknown IANA time zone {self.timezone!r} (e.g. 'Europe/Berlin', 'UTC')"
            ) from None
        set_("timezone", self.timezone.strip())

        if isinstance(self.workdays, (str, bytes)) or not isinstance(self.workdays, Iterable):
            raise ValueError(f"workdays: expected a list of weekdays, got {self.workdays!r}")
        days = frozenset(
            parse_weekday(day, field=f"workdays[{i}]") for i, day in enumerate(self.workdays)
        )
        if not days:
            raise ValueError("workdays: at least one working day is required")
        set_("workdays", days)

        start = parse_clock(self.start, field="hours.start")
        end = parse_clock(self.end, field="hours.end", allow_24=True)
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError("hours: start/end are local wall-clock times; do not attach a tzinfo")
        if end != time(0) and end <= start:
            raise ValueError(
                f"hours.end ({end.isoformat('minutes')}) must be after hours.start "
                f"({start.isoformat('minutes')})"
            )
        set_("start", start)
        set_("end", end)

        if self.country is None or (isinstance(self.country, str) and not self.country.strip()):
            if self.subdivision not in (None, ""):
                raise ValueError("holidays.subdivision: set only together with holidays.country")
            set_("country", None)
            set_("subdivision", None)
        else:
            if not isinstance(self.country, str):
                raise ValueError(f"holidays.country: expected a country code string, got {self.country!r}")
            country = self.country.strip().upper()
            subdivision = self.subdivision.strip() if isinstance(self.subdivision, str) else self.subdivision
            if subdivision == "":
                subdivision = None
            if subdivision is not None and not isinstance(subdivision, str):
                raise ValueError(f"holidays.subdivision: expected a string, got {subdivision!r}")
            try:
                _holidays_for(country, None, 2000)
            except NotImplementedError:
                raise ValueError(
                    f"holidays.country: unsupported country code {self.country!r} "
                    "(use an ISO 3166-1 alpha-2 code supported by the 'holidays' package, e.g. 'DE', 'US')"
                ) from None
            if subdivision is not None:
                for candidate in dict.fromkeys((subdivision, subdivision.upper())):
                    try:
                        _holidays_for(country, candidate, 2000)
                    except NotImplementedError:
                        continue
                    subdivision = candidate
                    break
                else:
                    known = _holidays_pkg.list_supported_countries().get(country, [])
                    raise ValueError(
                        f"holidays.subdivision: country {country} has no subdivision {self.subdivision!r}"
                        + (f" (known: {', '.join(known)})" if known else " (it has no subdivisions)")
                    )
            set_("country", country)
            set_("subdivision", subdivision)

        if isinstance(self.extra_holidays, (str, bytes)) or not isinstance(self.extra_holidays, Iterable):
            raise ValueError(f"holidays.extra: expected a list of dates, got {self.extra_holidays!r}")
        set_(
            "extra_holidays",
            frozenset(
                _parse_iso_date(d, field=f"holidays.extra[{i}]") for i, d in enumerate(self.extra_holidays)
            ),
        )

    @classmethod
    def from_dict(cls, config: Mapping[str, Any] | None, *, where: str = "calendar") -> BusinessCalendar:
        """Build from the plain-dict config form (see the module docstring).

        Unknown keys are refused (a typo in Helm values should fail loudly, not be ignored).
        Raises ``ValueError`` naming the bad field by its path under ``where``, e.g.
        ``"calendar.hours.end (08:00) must be after hours.start (09:00)"``.
        """
        if config is None:
            return cls()
        if not isinstance(config, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(config).__name__}")
        _reject_unknown(config, {"timezone", "workdays", "hours", "holidays"}, where)
        try:
            return cls._from_dict(config)
        except ValueError as error:
            raise ValueError(f"{where}.{error}") from None

    @classmethod
    def _from_dict(cls, config: Mapping[str, Any]) -> BusinessCalendar:
        kwargs: dict[str, Any] = {}
        if config.get("timezone") is not None:
            kwargs["timezone"] = config["timezone"]
        workdays = config.get("workdays")
        if workdays is not None:
            if isinstance(workdays, (str, bytes)) or not isinstance(workdays, Iterable):
                raise ValueError(f"workdays: expected a list of weekday names, got {workdays!r}")
            workdays = list(workdays)
            for i, day in enumerate(workdays):
                # Numbers are ambiguous in config (cron: 0 = Sunday; ISO: 1 = Monday): names only.
                if not isinstance(day, str):
                    raise ValueError(f"workdays[{i}]: expected a weekday name such as 'Mon', got {day!r}")
            kwargs["workdays"] = workdays
        hours = config.get("hours")
        if hours is not None:
            if not isinstance(hours, Mapping):
                raise ValueError(f"hours: expected a mapping with start/end, got {hours!r}")
            _reject_unknown(hours, {"start", "end"}, "hours")
            if hours.get("start") is not None:
                kwargs["start"] = parse_clock(hours["start"], field="hours.start")
            if hours.get("end") is not None:
                kwargs["end"] = parse_clock(hours["end"], field="hours.end", allow_24=True)
        hol = config.get("holidays")
        if hol is not None:
            if not isinstance(hol, Mapping):
                raise ValueError(f"holidays: expected a mapping with country/subdivision/extra, got {hol!r}")
            _reject_unknown(hol, {"country", "subdivision", "extra"}, "holidays")
            kwargs["country"] = hol.get("country")
            kwargs["subdivision"] = hol.get("subdivision")
            if hol.get("extra") is not None:
                kwargs["extra_holidays"] = hol["extra"]
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The plain-dict config form; ``from_dict(to_dict())`` round-trips."""
        holidays_cfg: dict[str, Any] = {"extra": [d.isoformat() for d in sorted(self.extra_holidays)]}
        if self.country is not None:
            holidays_cfg["country"] = self.country
        if self.subdivision is not None:
            holidays_cfg["subdivision"] = self.subdivision
        return {
            "timezone": self.timezone,
            "workdays": [WEEKDAY_NAMES[d] for d in sorted(self.workdays)],
            "hours": {
                "start": _clock(self.start),
                "end": "24:00" if self.end == time(0) else _clock(self.end),
            },
            "holidays": holidays_cfg,
        }

    # ------------------------------------------------------------------ days

    @property
    def zone(self) -> ZoneInfo:
        """The ``ZoneInfo`` of :attr:`timezone`."""
        return ZoneInfo(self.timezone)

    def local_date(self, dt: datetime) -> date:
        """The local calendar date of instant ``dt``."""
        _require_aware(dt, "dt")
        return dt.astimezone(self.zone).date()

    def is_holiday(self, day: date) -> bool:
        """True on a public holiday of the configured country/subdivision or an extra holiday."""
        day = _as_date(day)
        if day in self.extra_holidays:
            return True
        if self.country is None:
            return False
        return day in _holidays_for(self.country, self.subdivision, day.year)

    def holiday_name(self, day: date) -> str | None:
        """Name of the holiday on ``day`` (``"extra holiday"`` for configured extra days), else None."""
        day = _as_date(day)
        if self.country is not None:
            name = _holidays_for(self.country, self.subdivision, day.year).get(day)
            if name:
                return str(name)
        if day in self.extra_holidays:
            return "extra holiday"
        return None

    def is_business_day(self, day: date) -> bool:
        """A configured workday that is not a holiday."""
        day = _as_date(day)
        return day.weekday() in self.workdays and not self.is_holiday(day)

    def next_business_day(self, after: date) -> date:
        """The first business day strictly after the local date ``after``."""
        day = _as_date(after)
        for _ in range(_MAX_SEARCH_DAYS):
            day += timedelta(days=1)
            if self.is_business_day(day):
                return day
        raise ValueError(f"calendar has no business day within {_MAX_SEARCH_DAYS} days after {after}")

    def nth_business_day(self, after: date, n: int) -> date:
        """The ``n``-th business day strictly after ``after`` (``n=1`` is :meth:`next_business_day`)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        day = _as_date(after)
        for _ in range(n):
            day = self.next_business_day(day)
        return day

    # ------------------------------------------------------------------ hours

    def business_hours(self, day: date) -> tuple[datetime, datetime] | None:
        """UTC ``(start, end)`` of the working hours on local date ``day``; None if not a business day.

        Local times that do not exist (inside a DST gap) resolve like ``zoneinfo`` does with
        ``fold=0``; if that leaves an empty window the day has no working time.
        """
        day = _as_date(day)
        if not self.is_business_day(day):
            return None
        window = self._window(day)
        return window if window[0] < window[1] else None

    def _window(self, day: date) -> tuple[datetime, datetime]:
        zone = self.zone
        opens = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
        if self.end == time(0):
            closes = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
        else:
            closes = datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC)
        return opens, closes

    def end_of_business_day(self, day: date) -> datetime:
        """End of working hours (``end``, local) on local date ``day``, as a UTC datetime.

        Computed for any date; it does not check that ``day`` is a business day.
        """
        return self._window(_as_date(day))[1]

    def is_business_time(self, dt: datetime) -> bool:
        """True when ``dt`` falls inside working hours ``[start, end)`` of a business day."""
        _require_aware(dt, "dt")
        instant = dt.astimezone(UTC)
        local_day = instant.astimezone(self.zone).date()
        # With end = 24:00 a window may be reached from the previous local day's DST quirks;
        # checking the day before as well keeps this exact for every configuration.
        for day in (local_day, local_day - timedelta(days=1)):
            window = self.business_hours(day)
            if window is not None and window[0] <= instant < window[1]:
                return True
        return False

    def next_business_time(self, dt: datetime) -> datetime:
        """``dt`` (in UTC) if it is business time, else the next opening of working hours."""
        _require_aware(dt, "dt")
        instant = dt.astimezone(UTC)
        for opens, _closes in self._windows_from(instant):
            return max(opens, instant)
        raise AssertionError("unreachable")  # pragma: no cover

    def _windows_from(self, instant: datetime) -> Iterable[tuple[datetime, datetime]]:
        """Working windows (UTC) that end after ``instant``, in order, clipped to nothing."""
        day = instant.astimezone(self.zone).date() - timedelta(days=1)
        empty_run = 0
        for _ in range(_MAX_WALK_DAYS):
            window = self.business_hours(day)
            day += timedelta(days=1)
            if window is None:
                empty_run += 1
                if empty_run > _MAX_SEARCH_DAYS:
                    break
                continue
            empty_run = 0
            if window[1] > instant:
                yield window
        raise ValueError(
            "calendar has no working hours in a very long span after "
            f"{instant.isoformat()} (check workdays/holidays)"
        )

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The instant ``duration`` of working time after ``start`` (UTC).

        Only time inside working hours counts. Precisely: the earliest instant ``t >= start`` such
        that the working time in ``[start, t]`` equals ``duration``. Consequences:

        * a zero duration returns ``start`` itself (in UTC);
        * a positive duration that is used up exactly at closing time returns the closing instant
          (Mon 09:00 + 8 business hours = Mon 17:00, not Tue 09:00);
        * counting starts at the next opening when ``start`` is outside working hours
          (Fri 18:00 + 1 business hour = Mon 10:00 with a Mon-Fri 09:00-17:00 calendar).

        Across DST changes working hours stay put in local time and the duration is real elapsed
        time inside them.
        """
        _require_aware(start, "start")
        if not isinstance(duration, timedelta):
            raise TypeError(f"duration: expected a timedelta, got {type(duration).__name__}")
        if duration < timedelta(0):
            raise ValueError(f"duration: must not be negative, got {duration}")
        instant = start.astimezone(UTC)
        if duration == timedelta(0):
            return instant
        remaining = duration
        for opens, closes in self._windows_from(instant):
            begin = max(opens, instant)
            available = closes - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable")  # pragma: no cover

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time inside ``[start, end]``; zero when ``end <= start``."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        a, b = start.astimezone(UTC), end.astimezone(UTC)
        total = timedelta(0)
        if b <= a:
            return total
        for opens, closes in self._windows_from(a):
            if opens >= b:
                break
            total += min(closes, b) - max(opens, a)
        return total


def _clock(value: time) -> str:
    return value.isoformat("seconds" if value.second else "minutes")


def _as_date(value: date) -> date:
    if isinstance(value, datetime):
        raise TypeError("expected a local date, got a datetime; use BusinessCalendar.local_date(dt) first")
    if not isinstance(value, date):
        raise TypeError(f"expected a date, got {type(value).__name__}")
    return value


def _reject_unknown(mapping: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise ValueError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
