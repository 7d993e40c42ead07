"""Unit tests for incident_operator.domain.detection.detectors (pure; no cluster, no NAB data)."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incident_operator.domain.detection.detectors import (
    BASELINE_DEFAULTS,
    DEFAULT_DETECTOR_SPEC,
    BaselineDetector,
    Detector,
    InvalidDetector,
    ThresholdDetector,
    Verdict,
    build_detector,
    nb_log_sf,
    nb_upper_quantile,
)


def poisson(rng: random.Random, lam: float) -> int:
    """Knuth's Poisson sampler (fine for the small rates used here)."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def seasonal_for(series: list[float], i: int, det: BaselineDetector, per_day: int) -> list[list[float]]:
    """Seasonal context for row i of a regular series with `per_day` samples a day."""
    out = []
    for w in det.seasonal_windows:
        centre = i - int(round(w.lag_s / 86400 * per_day))
        lo, hi = centre - w.points_before, centre + w.points_after + 1
        if lo >= 0 and hi <= i:
            out.append(series[lo:hi])
    return out


# --------------------------------------------------------------------------- threshold


def test_threshold_fires_at_exactly_n_and_not_below():
    det = build_detector({"type": "threshold", "threshold": {"value": 15}})
    assert isinstance(det, ThresholdDetector)
    at = det.evaluate(15, [])
    below = det.evaluate(14, [])
    assert at.firing and not below.firing
    assert at.threshold == 15 and at.expected is None
    assert at.score == pytest.approx(1.0) and below.score < 1.0
    assert det.history_points == 0 and det.seasonal_windows == ()


def test_threshold_accepts_float_values():
    det = build_detector({"type": "threshold", "threshold": {"value": 2.5}})
    assert det.evaluate(2.5, []).firing
    assert not det.evaluate(2.49, []).firing


# --------------------------------------------------------------------------- baseline


def test_default_spec_builds_the_default_baseline_detector():
    det = build_detector(DEFAULT_DETECTOR_SPEC)
    assert isinstance(det, BaselineDetector)
    assert det == BaselineDetector()
    assert build_detector(None) == det and build_detector({}) == det
    assert isinstance(det, Detector)
    json.dumps(DEFAULT_DETECTOR_SPEC)  # must be plain data, usable in a CRD default
    assert DEFAULT_DETECTOR_SPEC["baseline"] == BASELINE_DEFAULTS
    # one bounded range query for history
    assert det.history_points <= 500
    assert len(det.seasonal_windows) == det.seasonal_days


def test_partial_baseline_block_takes_defaults():
    det = build_detector({"type": "baseline", "baseline": {"minCount": 25}})
    assert isinstance(det, BaselineDetector)
    assert det.min_count == 25
    assert det.window_points == BASELINE_DEFAULTS["windowPoints"]


def _steady(rng: random.Random, n: int, lam: float) -> list[float]:
    return [float(poisson(rng, lam)) for _ in range(n)]


@pytest.mark.parametrize("lam", [0.5, 3.0, 20.0])
def test_baseline_quiet_on_steady_poisson_series(lam):
    rng = random.Random(42)
    per_day = 288
    det = build_detector(DEFAULT_DETECTOR_SPEC)
    assert isinstance(det, BaselineDetector)
    series = _steady(rng, 3 * per_day, lam)
    fired = []
    for i in range(det.history_points, len(series)):
        v = det.evaluate(series[i], series[i - det.history_points : i], seasonal_for(series, i, det, per_day))
        assert v.ready
        fired.append(v.firing)
    assert not any(fired)


def test_baseline_fires_on_5x_spike_sustained_over_its_window():
    rng = random.Random(7)
    per_day = 288
    det = build_detector(DEFAULT_DETECTOR_SPEC)
    assert isinstance(det, BaselineDetector)
    series = _steady(rng, 2 * per_day, 20.0)
    spike = [100.0] * det.window_points  # 5x the normal rate for one full window (30 min)
    verdicts = []
    for x in spike:
        i = len(series)
        verdicts.append(
            det.evaluate(x, series[i - det.history_points :], seasonal_for(series + [x], i, det, per_day))
        )
        series.append(x)
    assert verdicts[-1].firing
    v = verdicts[-1]
    assert v.value == pytest.approx(100.0 * det.window_points)
    assert v.expected == pytest.approx(120.0, rel=0.15)  # 6 samples x 20
    assert v.score >= 1.0 and v.p_value is not None and v.p_value < 1e-6
    assert not verdicts[0].firing  # one 5x sample inside a 30-minute window is not yet enough


def test_baseline_with_single_sample_window_fires_on_single_5x_sample():
    rng = random.Random(3)
    det = build_detector({"type": "baseline", "baseline": {"windowPoints": 1, "seasonalDays": 0}})
    history = _steady(rng, det.history_points, 20.0)
    assert det.evaluate(100, history).firing
    assert not det.evaluate(25, history).firing


def test_baseline_tolerates_its_own_recurring_bursts():
    """A series that bursts to ~200 every few hours treats a 200 burst as normal."""
    det = build_detector({"type": "baseline", "baseline": {"windowPoints": 1, "seasonalDays": 0}})
    history = [2.0 if i % 36 else 200.0 for i in range(det.history_points)]
    assert not det.evaluate(210, history).firing
    quiet = [2.0] * det.history_points
    assert det.evaluate(210, quiet).firing


def test_min_count_floor():
    spec = {"type": "baseline", "baseline": {"windowPoints": 1, "seasonalDays": 0, "minCount": 10}}
    det = build_detector(spec)
    zeros = [0.0] * det.history_points
    v9 = det.evaluate(9, zeros)
    v10 = det.evaluate(10, zeros)
    assert not v9.firing and v10.firing
    assert v9.threshold == 10 and v9.expected == 0
    higher = build_detector({"type": "baseline", "baseline": {**spec["baseline"], "minCount": 50}})
    assert not higher.evaluate(49, zeros).firing


def test_not_ready_without_enough_history():
    det = build_detector(DEFAULT_DETECTOR_SPEC)
    v = det.evaluate(10_000, [1.0] * 20)
    assert not v.firing and not v.ready and math.isinf(v.threshold)


def test_reference_excludes_windows_overlapping_the_tested_one():
    det = build_detector({"type": "baseline", "baseline": {"windowPoints": 3, "trailingPoints": 12,
                                                           "seasonalDays": 0, "minReferencePoints": 12}})
    assert isinstance(det, BaselineDetector)
    assert det.history_points == 12 + 2 * 3 - 2
    history = list(range(det.history_points))  # 0..15
    ref = det.reference(history)
    assert len(ref) == 12
    # last reference window ends 3 samples before now: history[11..13] = 11+12+13
    assert ref[-1] == 11 + 12 + 13
    # the tested window is value + history[14], history[15]
    assert det.evaluate(0, history).value == 14 + 15


@settings(max_examples=150, deadline=None)
@given(
    history=st.lists(st.integers(min_value=0, max_value=50), min_size=0, max_size=60),
    value=st.integers(min_value=0, max_value=60),
    min_count=st.integers(min_value=0, max_value=80),
    window=st.integers(min_value=1, max_value=4),
)
def test_property_never_fires_below_min_count(history, value, min_count, window):
    det = build_detector(
        {
            "type": "baseline",
            "baseline": {
                "minCount": min_count,
                "windowPoints": window,
                "trailingPoints": 24,
                "seasonalDays": 0,
                "minReferencePoints": 4,
            },
        }
    )
    v = det.evaluate(value, [float(h) for h in history])
    if v.firing:
        assert v.value >= min_count and v.value >= v.threshold >= min_count
    if v.value < min_count:
        assert not v.firing


# --------------------------------------------------------------------------- count tails


def _brute_nb_sf(k: int, mean: float, dispersion: float) -> float:
    if dispersion == 0:
        return 1 - sum(math.exp(-mean + x * math.log(mean) - math.lgamma(x + 1)) for x in range(k))
    r = 1 / dispersion
    p = r / (r + mean)
    cdf = sum(
        math.exp(math.lgamma(x + r) - math.lgamma(r) - math.lgamma(x + 1) + r * math.log(p) + x * math.log1p(-p))
        for x in range(k)
    )
    return 1 - cdf


@pytest.mark.parametrize(
    "k,mean,dispersion",
    [(5, 2.0, 0.3), (20, 5.0, 1.0), (3, 10.0, 0.5), (12, 4.0, 0.0), (1, 0.5, 0.3), (30, 30.0, 0.0)],
)
def test_nb_tail_matches_direct_summation(k, mean, dispersion):
    assert math.exp(nb_log_sf(k, mean, dispersion)) == pytest.approx(_brute_nb_sf(k, mean, dispersion), rel=1e-7)


def test_nb_tail_extremes_and_quantile():
    assert nb_log_sf(0, 5.0, 0.3) == 0.0
    assert nb_log_sf(1, 0.0, 0.3) == -math.inf
    assert nb_log_sf(500, 10.0, 0.0) < math.log(1e-100)  # no underflow to a crash
    for mean, disp in [(0.5, 0.3), (12.0, 0.3), (120.0, 0.3), (7.0, 0.0)]:
        q = nb_upper_quantile(mean, disp, 1e-6)
        assert nb_log_sf(q, mean, disp) <= math.log(1e-6) < nb_log_sf(q - 1, mean, disp)


# --------------------------------------------------------------------------- configuration errors


@pytest.mark.parametrize(
    "spec,needle",
    [
        ({"type": "zscore"}, "detector.type must be one of threshold, baseline"),
        ({"type": "threshold"}, "detector.threshold.value is required"),
        ({"type": "threshold", "threshold": {"value": 0}}, "must be > 0"),
        ({"type": "threshold", "threshold": {"value": "15"}}, "detector.threshold.value must be a number"),
        ({"type": "threshold", "threshold": {"value": 15, "window": "10m"}}, "unknown field(s) in detector.threshold: window"),
        ({"type": "baseline", "baseline": {"mincount": 5}}, "unknown field(s) in detector.baseline: mincount"),
        ({"type": "baseline", "baseline": {"minCount": -1}}, "detector.baseline.minCount must be between 0 and"),
        ({"type": "baseline", "baseline": {"windowPoints": 0}}, "detector.baseline.windowPoints must be between 1 and 60"),
        ({"type": "baseline", "baseline": {"windowPoints": 2.5}}, "detector.baseline.windowPoints must be an integer"),
        ({"type": "baseline", "baseline": {"factor": True}}, "detector.baseline.factor must be a number"),
        ({"type": "baseline", "baseline": {"upperQuantile": 1.5}}, "detector.baseline.upperQuantile must be between"),
        ({"type": "baseline", "baseline": {"maxPValue": 0}}, "detector.baseline.maxPValue must be between"),
        ({"type": "baseline", "baseline": {"factor": float("nan")}}, "must be finite"),
        ({"type": "baseline", "baseline": []}, "detector.baseline must be a mapping"),
        ({"type": "baseline", "threshold": {"value": 3}}, "detector.threshold is set but detector.type is 'baseline'"),
        ({"type": "baseline", "extra": 1}, "unknown field(s) in detector: extra"),
        (["baseline"], "detector must be a mapping"),
        (
            {"type": "baseline", "baseline": {"seasonalDays": 0, "trailingPoints": 20, "minReferencePoints": 50}},
            "never be ready",
        ),
    ],
)
def test_bad_config_raises_invalid_detector_with_helpful_message(spec, needle):
    with pytest.raises(InvalidDetector) as err:
        build_detector(spec)
    assert needle in str(err.value)
    assert isinstance(err.value, ValueError)


def test_integral_float_is_accepted_for_integer_fields():
    det = build_detector({"type": "baseline", "baseline": {"windowPoints": 3.0}})
    assert isinstance(det, BaselineDetector) and det.window_points == 3


def test_verdict_is_a_frozen_value():
    v = Verdict(firing=True, value=3.0, expected=None, threshold=3.0, score=1.0)
    with pytest.raises(AttributeError):
        v.firing = False  # type: ignore[misc]


# --------------------------------------------------------------------------- shift and drop tests
#
# The spike test is switched off in some of these (minCount 1e9 only affects the spike test) so
# that each shape test is exercised on its own; `component` says which test a verdict reports.

PER_DAY = 288


def _replay(det: BaselineDetector, series: list[float], start: int) -> list[Verdict]:
    """Evaluate rows start.. of a regular 5-minute series, each seeing only earlier rows."""
    out = []
    for i in range(start, len(series)):
        history = series[max(0, i - det.history_points) : i]
        out.append(det.evaluate(series[i], history, seasonal_for(series, i, det, PER_DAY)))
    return out


def _shape_only(**fields) -> BaselineDetector:
    det = build_detector({"type": "baseline", "baseline": {"minCount": 1e9, **fields}})
    assert isinstance(det, BaselineDetector)
    return det


def _daily(rng: random.Random, days: int, night: float = 5.0, day: float = 40.0) -> list[float]:
    """Poisson counts with a daily rhythm: `night` per sample at midnight, `day` at noon."""
    out = []
    for i in range(days * PER_DAY):
        phase = (i % PER_DAY) / PER_DAY
        lam = night + (day - night) * 0.5 * (1 - math.cos(2 * math.pi * phase))
        out.append(float(poisson(rng, lam)))
    return out


def test_default_enables_the_shape_tests_within_the_fetch_budget():
    det = build_detector(DEFAULT_DETECTOR_SPEC)
    assert isinstance(det, BaselineDetector)
    assert (det.shift_window_points, det.drop_window_points) == (36, 12)
    assert det.history_points == 298  # unchanged by the shape tests; the operator fetches <= 300
    # one short query per seasonal day: the longest window (36) plus +-12 samples around now - N days
    assert len(det.seasonal_windows) == 7
    for w in det.seasonal_windows:
        assert (w.points_before, w.points_after) == (12 + 36 - 1, 12)


def test_shift_fires_on_a_sustained_level_shift_up():
    det = _shape_only()
    series = [20.0] * (8 * PER_DAY)
    start = len(series)
    series += [200.0] * det.shift_window_points  # 10x for 3 hours
    verdicts = _replay(det, series, start)
    assert all(v.ready for v in verdicts)
    assert not verdicts[5].firing  # 30 minutes of it is not a sustained shift yet
    last = verdicts[-1]
    assert last.firing and last.component == "shift"
    assert last.value == pytest.approx(200.0 * 36)
    assert last.expected == pytest.approx(20.0 * 36)
    assert last.score >= 1.0


def test_shift_ignores_a_moderate_rise():
    det = _shape_only()
    series = [20.0] * (8 * PER_DAY) + [60.0] * 36  # 3x for 3 hours: below e^(10 x 0.2) = 7.4x
    assert not any(v.firing for v in _replay(det, series, 8 * PER_DAY))


def test_drop_fires_when_tickets_stop_arriving():
    det = _shape_only()
    series = [20.0] * (2 * PER_DAY)
    start = len(series)
    series += [0.0] * det.drop_window_points  # intake broken for an hour
    verdicts = _replay(det, series, start)
    assert not verdicts[2].firing  # 15 minutes without tickets: 180 of the usual 240 in the hour
    last = verdicts[-1]
    assert last.firing and last.component == "drop"
    assert last.value == 0 and last.expected == pytest.approx(240.0)
    assert last.threshold < last.expected and last.score >= 1.0


def test_default_detector_fires_on_a_drop_to_zero():
    det = build_detector(DEFAULT_DETECTOR_SPEC)
    assert isinstance(det, BaselineDetector)
    series = [20.0] * (2 * PER_DAY) + [0.0] * 12
    assert _replay(det, series, len(series) - 1)[-1].firing


def test_shape_tests_quiet_on_a_steady_daily_rhythm():
    """Nine days of Poisson counts rising from 5 to 40 per sample every day: nothing fires."""
    rng = random.Random(11)
    det = build_detector(DEFAULT_DETECTOR_SPEC)
    assert isinstance(det, BaselineDetector)
    series = _daily(rng, 9)
    verdicts = _replay(det, series, 8 * PER_DAY)
    assert all(v.ready for v in verdicts)
    assert not any(v.firing for v in verdicts)


def test_shape_tests_ignore_tiny_absolute_changes():
    # two tickets every three hours; then 25 in three hours (12x, but only 23 more than usual)
    det = _shape_only()
    quiet = [1.0 if i % 18 == 0 else 0.0 for i in range(8 * PER_DAY)]
    rise = quiet + [1.0] * 25 + [0.0] * 11
    assert not any(v.firing for v in _replay(det, rise, len(quiet)))
    # and a series that usually sees 2 tickets an hour going silent is no drop (minChange 30)
    silent = [1.0 if i % 6 == 0 else 0.0 for i in range(2 * PER_DAY)] + [0.0] * 24
    assert not any(v.firing for v in _replay(det, silent, 2 * PER_DAY))
    # the same rise does fire once the minimum change is lowered: it was the floor that held it
    low = _shape_only(minChange=10)
    assert _replay(low, rise, len(rise) - 1)[-1].firing


def test_shape_tests_can_be_switched_off():
    det = _shape_only(shiftWindowPoints=0, dropWindowPoints=0)
    series = [20.0] * (8 * PER_DAY) + [0.0] * 12 + [400.0] * 36
    assert not any(v.firing for v in _replay(det, series, 8 * PER_DAY))
    assert det.seasonal_windows[0].points_before == 12 + 6 - 1  # back to the spike test's own window


@pytest.mark.parametrize(
    "fields,needle",
    [
        ({"shiftZ": 0}, "detector.baseline.shiftZ must be between 1 and 100"),
        ({"dropZ": "8"}, "detector.baseline.dropZ must be a number"),
        ({"shiftWindowPoints": 145}, "detector.baseline.shiftWindowPoints must be between 0 and 144"),
        ({"minLogScale": 0}, "detector.baseline.minLogScale must be between"),
        ({"minChange": -1}, "detector.baseline.minChange must be between 0 and"),
        ({"dropWindowPoints": 1.5}, "detector.baseline.dropWindowPoints must be an integer"),
        ({"shiftWindowPoints": 36, "shiftwindowpoints": 36}, "unknown field(s) in detector.baseline: shiftwindowpoints"),
    ],
)
def test_bad_shape_config_names_the_field(fields, needle):
    with pytest.raises(InvalidDetector) as err:
        build_detector({"type": "baseline", "baseline": fields})
    assert needle in str(err.value)
