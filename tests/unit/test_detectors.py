"""Unit tests for incident_operator.domain.detectors (pure; no cluster, no NAB data)."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incident_operator.domain.detectors import (
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
