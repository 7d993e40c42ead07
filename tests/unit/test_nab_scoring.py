"""Unit tests for benchmarks/nab_scoring.py on a hand-made example (no NAB data needed)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "nab_scoring.py"
_spec = importlib.util.spec_from_file_location("nab_scoring", _PATH)
assert _spec and _spec.loader
nab_scoring = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("nab_scoring", nab_scoring)
_spec.loader.exec_module(nab_scoring)

T = datetime(2015, 3, 1)


def ts(i: int) -> datetime:
    return T + timedelta(minutes=i)


def alarms_at(n: int, rows) -> list[int]:
    out = [0] * n
    for i in rows:
        out[i] = 1
    return out


def test_probation_rows():
    assert nab_scoring.probation_rows(100) == 15
    assert nab_scoring.probation_rows(15_902) == 750
    assert nab_scoring.probation_rows(2_500) == 375


def test_hand_made_example():
    n = 100  # probation: first 15 rows ignored
    stamps = [ts(i) for i in range(n)]
    windows = [(ts(20), ts(30)), (ts(60), ts(70)), (ts(85), ts(90))]
    labels = [ts(22), ts(65), ts(88)]
    rows = (
        [10, 11, 12]  # inside probation: ignored entirely
        + [14, 15, 16]  # crosses the probation boundary: counts as one event starting at 15 (FP)
        + [25, 26]  # hit window 1 (one TP event)
        + [28]  # second TP event in window 1: does not add a hit
        + [40]  # FP
        + [45, 46]  # FP (one event, two rows)
        + [69, 70, 71, 72]  # touches window 2 (end bound inclusive): TP, hit
    )
    s = nab_scoring.score_file(stamps, alarms_at(n, rows), windows, labels, name="x")
    assert (s.windows, s.hits, s.fp_events, s.tp_events) == (3, 2, 3, 3)
    assert s.delays_min == (3.0, 4.0)  # 25 - 22, 69 - 65
    total = nab_scoring.combine([s])
    assert total.precision == pytest.approx(2 / 5)
    assert total.recall == pytest.approx(2 / 3)
    assert total.f1 == pytest.approx(2 * 0.4 * (2 / 3) / (0.4 + 2 / 3))
    assert total.median_delay_min == 3.5


def test_window_start_bound_is_inclusive_and_early_alarm_has_negative_delay():
    stamps = [ts(i) for i in range(100)]
    s = nab_scoring.score_file(stamps, alarms_at(100, [60]), [(ts(60), ts(70))], [ts(65)])
    assert s.hits == 1 and s.fp_events == 0 and s.delays_min == (-5.0,)


def test_no_alarms_and_no_windows():
    stamps = [ts(i) for i in range(50)]
    s = nab_scoring.score_file(stamps, [0] * 50, [], [])
    total = nab_scoring.combine([s])
    assert total.precision is None and total.recall == 0.0 and total.f1 == 0.0
    assert total.median_delay_min is None


def test_combine_sums_files():
    stamps = [ts(i) for i in range(100)]
    a = nab_scoring.score_file(stamps, alarms_at(100, [25]), [(ts(20), ts(30))], [ts(25)])
    b = nab_scoring.score_file(stamps, alarms_at(100, [50]), [(ts(20), ts(30))], [ts(25)])
    c = nab_scoring.combine([a, b])
    assert (c.windows, c.hits, c.fp_events) == (2, 1, 1)
    assert c.f1 == pytest.approx(0.5)


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError):
        nab_scoring.score_file([ts(0)], [0, 1], [], [])


def test_parse_ts_accepts_both_nab_formats():
    assert nab_scoring.parse_ts("2015-03-03 04:37:53.000000") == datetime(2015, 3, 3, 4, 37, 53)
    assert nab_scoring.parse_ts("2015-03-03 04:37:53") == datetime(2015, 3, 3, 4, 37, 53)
