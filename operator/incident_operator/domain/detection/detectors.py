"""Spike detectors for ticket-count series (pure Python: no I/O, no kopf/kubernetes).

Two detectors share one interface (:class:`Detector`): ``evaluate(value, history, seasonal)``
returns a :class:`Verdict`. Both are built from the plain dict found in a DetectionRule's
``spec.detector`` by :func:`build_detector`; a bad dict raises :class:`InvalidDetector`.

``threshold``
    Fires when ``value >= threshold.value`` ("15 tickets in 10 minutes"; the window lives in the
    rule's PromQL, e.g. ``sum(increase(tickets_total[10m]))``). Needs no history.

``baseline`` -- a seasonal quantile envelope with a negative-binomial significance floor (the
    *spike* test), plus two-sided *shift* and *drop* tests (below)
    Let ``k = windowPoints``. The detector tests the *windowed count* ``c`` = the sum of the current
    sample and the ``k - 1`` samples before it (with a 5-minute step and ``k = 6``: the count in the
    last 30 minutes). Summing makes the test about a sustained burst rather than one noisy sample,
    and it is what a Poisson/negative-binomial test should be applied to (a count over a window).

    The *reference* set ``R`` holds the same windowed counts, computed from the series' own past:

    * every window that ends ``k .. k + trailingPoints - 1`` samples before now (the trailing day at
      the default 288 x 5 min), i.e. the recent past *without* any window that overlaps the one
      being tested (so a burst cannot hide itself by inflating its own reference), and
    * for each of the previous ``seasonalDays`` days, every window ending within
      ``seasonalHalfWidthPoints`` samples of the same time of day (the daily rhythm: 3 a.m. is
      compared with 3 a.m.).

    From ``R`` (robust statistics; nothing is fitted by least squares):

    * ``expected`` = median(R): the baseline count for this window at this time;
    * ``upper`` = the ``upperQuantile`` (default 0.99) empirical quantile of R: the top of the
      normal range *as this series itself behaves*, bursts included. ``upper - expected`` is a
      robust, tail-based scale (a "robust z-score" whose unit is the distance from the median to
      the 99th percentile rather than a standard deviation, which bursty count data does not
      have in any useful sense). It absorbs over-dispersion and recurring bursts
      nonparametrically: a series that spikes to 200 every day has a wide scale, a flat one a
      narrow one;
    * ``nb`` = the smallest integer x with P[X >= x] <= ``maxPValue`` for X ~ NegBin(mean
      mu, variance mu + dispersion * mu^2), mu = max(expected, 0.5): a count-data significance
      floor that matters when the reference is short or almost constant (Poisson when
      ``dispersion = 0``). mu is floored at 0.5 so that a series that is usually zero does not
      make every single ticket significant.

    The step threshold is::

        threshold = max(minCount,
                        factor * expected,
                        expected + upperFactor * (upper - expected),
                        nb)

    and the detector fires when ``c >= threshold``. ``score = c / threshold`` (>= 1 exactly when
    firing; higher is more anomalous) and ``p_value = P[X >= c]`` under the negative binomial.

    Until R holds ``minReferencePoints`` windowed counts (a new series, or a gap), the detector
    never fires and reports ``ready = False`` and ``threshold = inf``.

    Two-sided shape tests (the detector fires when the spike test above, the shift test or the
    drop test fires; the reported Verdict is the test with the highest score, named in
    ``Verdict.component``). Both use ``centre = median(log(1 + ref))`` and
    ``scale = max(1.4826 * MAD(log(1 + ref)), minLogScale)``, ``expected = exp(centre) - 1``:

    * shift (sustained rise): the count over the last ``shiftWindowPoints`` samples (3 h) against
      the same-length counts ending within ``seasonalHalfWidthPoints`` of the same time of day on
      the previous ``seasonalDays`` days; fires when
      ``count >= max(exp(centre + shiftZ * scale) - 1, expected + minChange)``;
    * drop (tickets stopped arriving): the count over the last ``dropWindowPoints`` samples (1 h)
      against the non-overlapping trailing counts and the same-time-of-day counts; fires when
      ``count <= min(exp(centre - dropZ * scale) - 1, expected - minChange)``.

    Each is evaluated only once its reference holds ``minReferencePoints`` counts;
    ``shiftWindowPoints: 0`` / ``dropWindowPoints: 0`` turn them off.

    Fetching: ``history_points = trailingPoints + 2 * windowPoints - 2`` trailing samples at the
    rule's evaluation step (298 at the defaults; one range query), plus one short range query per
    seasonal day (``seasonal_windows``: ``2 * seasonalHalfWidthPoints + max(windowPoints,
    shiftWindowPoints, dropWindowPoints)`` samples around now minus N days; 60 at the defaults). All "points" are samples at the rule's step, so the defaults
    (tuned for a 5-minute step) mean: 30-minute windows, a 24-hour trailing reference and +-1 hour
    around the same time on each of the last 7 days.

See ``docs/detection.md`` for the reasoning behind every default and the benchmark figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, NamedTuple, Protocol, Sequence, runtime_checkable

__all__ = [
    "Verdict",
    "Detector",
    "SeasonalWindow",
    "ThresholdDetector",
    "BaselineDetector",
    "InvalidDetector",
    "build_detector",
    "DEFAULT_DETECTOR_SPEC",
    "BASELINE_DEFAULTS",
    "BASELINE_PARAMETERS",
    "THRESHOLD_PARAMETERS",
    "Parameter",
    "nb_log_sf",
    "nb_upper_quantile",
]


class InvalidDetector(ValueError):
    """The detector configuration (``spec.detector``) is invalid; the message says why."""


@dataclass(frozen=True)
class Verdict:
    firing: bool
    value: float  # the tested value (for `baseline`: the windowed count over `windowPoints` samples)
    expected: float | None  # the baseline (None for threshold)
    threshold: float  # the level the value had to reach to fire at this step (inf when not ready)
    score: float  # higher = more anomalous; value / threshold (>= 1 exactly when firing)
    p_value: float | None = None  # upper-tail probability of `value` under the count model (baseline)
    ready: bool = True  # False while the detector lacks the history it needs (never fires then)
    # which test this verdict reports (`baseline`): "spike", "shift" (sustained rise) or "drop";
    # None for `threshold`. When several tests are evaluated, the one with the highest score.
    component: str | None = None


@dataclass(frozen=True)
class SeasonalWindow:
    """Samples wanted around ``now - lag_s``: ``points_before`` steps before it to ``points_after`` after."""

    lag_s: float
    points_before: int
    points_after: int


@runtime_checkable
class Detector(Protocol):
    def evaluate(
        self, value: float, history: Sequence[float], seasonal: Sequence[Sequence[float]] = ()
    ) -> Verdict: ...

    @property
    def history_points(self) -> int: ...  # trailing samples evaluate() wants in `history`

    @property
    def seasonal_windows(self) -> tuple[SeasonalWindow, ...]: ...  # () when `seasonal` is unused


# --------------------------------------------------------------------------------------------
# Count-distribution tails (negative binomial, Poisson) in log space, stdlib only.
# --------------------------------------------------------------------------------------------

_FPMIN = 1e-300
_EPS = 1e-15


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _FPMIN else _FPMIN)
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _FPMIN else _FPMIN)
        c = 1.0 + aa / c
        c = c if abs(c) > _FPMIN else _FPMIN
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _FPMIN else _FPMIN)
        c = 1.0 + aa / c
        c = c if abs(c) > _FPMIN else _FPMIN
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def _log_betai(a: float, b: float, x: float) -> float:
    """log of the regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return -math.inf
    if x >= 1.0:
        return 0.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return log_front + math.log(_betacf(a, b, x)) - math.log(a)
    rest = math.exp(log_front) * _betacf(b, a, 1.0 - x) / b
    return math.log(max(1.0 - rest, _FPMIN))


def _log_gammp(a: float, x: float) -> float:
    """log of the regularised lower incomplete gamma function P(a, x)."""
    if x <= 0.0:
        return -math.inf
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:  # series
        ap, total, term = a, 1.0 / a, 1.0 / a
        for _ in range(10000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return log_front + math.log(total)
    # continued fraction for Q(a, x), then P = 1 - Q
    b = x + 1.0 - a
    c = 1.0 / _FPMIN
    d = 1.0 / b
    h = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _FPMIN else _FPMIN)
        c = b + an / c
        c = c if abs(c) > _FPMIN else _FPMIN
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    q = math.exp(log_front) * h
    return math.log(max(1.0 - q, _FPMIN))


def nb_log_sf(count: float, mean: float, dispersion: float) -> float:
    """``log P[X >= count]`` for X with the given mean and variance ``mean + dispersion * mean**2``.

    ``dispersion = 0`` is the Poisson distribution; otherwise the negative binomial with size
    ``1 / dispersion``. ``count`` is rounded up to an integer.
    """
    k = math.ceil(count - 1e-9)
    if k <= 0:
        return 0.0
    if mean <= 0.0:
        return -math.inf
    if dispersion <= 0.0:
        return _log_gammp(float(k), mean)  # P[Poisson(mean) >= k] = P(k, mean)
    r = 1.0 / dispersion
    p_success = r / (r + mean)
    return _log_betai(float(k), r, 1.0 - p_success)  # P[NB >= k] = I_{1-p}(k, r)


@lru_cache(maxsize=8192)
def nb_upper_quantile(mean: float, dispersion: float, p_value: float) -> int:
    """Smallest integer x >= 1 with ``P[X >= x] <= p_value`` (see :func:`nb_log_sf`)."""
    target = math.log(p_value)
    lo = max(1, math.floor(mean))  # P[X >= lo] > p_value for any sensible p_value; checked below
    if nb_log_sf(lo, mean, dispersion) <= target:
        lo_ = 1
        while lo_ < lo and nb_log_sf(lo_, mean, dispersion) > target:
            lo_ += 1
        return lo_
    hi = lo * 2 + 1
    while nb_log_sf(hi, mean, dispersion) > target:
        lo, hi = hi, hi * 2
        if hi > 1e15:
            return hi
    while hi - lo > 1:  # invariant: sf(lo) > target >= sf(hi)
        mid = (lo + hi) // 2
        if nb_log_sf(mid, mean, dispersion) > target:
            lo = mid
        else:
            hi = mid
    return hi


# --------------------------------------------------------------------------------------------
# Detectors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdDetector:
    """Fires when ``value >= value_threshold``."""

    value_threshold: float

    @property
    def history_points(self) -> int:
        return 0

    @property
    def seasonal_windows(self) -> tuple[SeasonalWindow, ...]:
        return ()

    def evaluate(
        self, value: float, history: Sequence[float] = (), seasonal: Sequence[Sequence[float]] = ()
    ) -> Verdict:
        v = float(value)
        t = self.value_threshold
        return Verdict(firing=v >= t, value=v, expected=None, threshold=t, score=v / t)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of an already sorted, non-empty sequence."""
    n = len(sorted_values)
    pos = q * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


#: 1.4826 x MAD estimates the standard deviation of a normal distribution.
_MAD_TO_SIGMA = 1.4826


def _recent_count(value: float, history: Sequence[float], k: int) -> float:
    """The count over the last ``k`` samples ending now: ``value`` plus the ``k - 1`` before it."""
    return float(value) + (float(sum(history[len(history) - (k - 1):])) if k > 1 else 0.0)


def _window_sums(samples: Sequence[float], k: int, stop: int | None = None) -> list[float]:
    """Sums of every run of ``k`` consecutive samples, in order, of the first ``stop`` samples."""
    xs = samples if stop is None else samples[:stop]
    n = len(xs)
    if n < k:
        return []
    s = float(sum(xs[:k]))
    out = [s]
    for i in range(k, n):
        s += xs[i] - xs[i - k]
        out.append(s)
    return out


@dataclass(frozen=True)
class BaselineDetector:
    """Seasonal quantile envelope with a negative-binomial floor; see the module docstring."""

    window_points: int = 6
    trailing_points: int = 288
    seasonal_days: int = 7
    seasonal_half_width_points: int = 12
    upper_quantile: float = 0.99
    upper_factor: float = 4.0
    factor: float = 3.0
    min_count: float = 10.0
    dispersion: float = 0.1
    max_p_value: float = 1e-6
    min_reference_points: int = 72
    shift_window_points: int = 36
    shift_z: float = 10.0
    drop_window_points: int = 12
    drop_z: float = 8.0
    min_log_scale: float = 0.2
    min_change: float = 30.0

    @property
    def history_points(self) -> int:
        # the current window's k-1 predecessors, then trailing_points windows that do not overlap it
        # (the drop test reuses these samples; it never asks for more)
        return self.trailing_points + 2 * self.window_points - 2

    @property
    def _seasonal_span(self) -> int:
        """Longest window (in samples) cut from the seasonal day lists."""
        return max(self.window_points, self.shift_window_points, self.drop_window_points)

    @property
    def seasonal_windows(self) -> tuple[SeasonalWindow, ...]:
        h, span = self.seasonal_half_width_points, self._seasonal_span
        return tuple(SeasonalWindow(86400.0 * d, h + span - 1, h) for d in range(1, self.seasonal_days + 1))

    def _seasonal_sums(self, seasonal: Sequence[Sequence[float]], k: int) -> list[float]:
        """``k``-sample window counts ending within +-seasonalHalfWidthPoints of now - N days."""
        need = 2 * self.seasonal_half_width_points + k  # the last samples of each day list
        out: list[float] = []
        for day in seasonal[: self.seasonal_days]:
            out.extend(_window_sums(list(day[-need:]), k))
        return out

    def _trailing_sums(self, history: Sequence[float], k: int) -> list[float]:
        """``k``-sample window counts of the recent past that do not overlap the tested window."""
        hist = list(history[-self.history_points :])
        ref = _window_sums(hist, k, stop=len(hist) - k + 1)
        return ref[-self.trailing_points :]

    def reference(self, history: Sequence[float], seasonal: Sequence[Sequence[float]] = ()) -> list[float]:
        """The windowed counts the spike test is learned from (unsorted)."""
        k = self.window_points
        return self._trailing_sums(history, k) + self._seasonal_sums(seasonal, k)

    def _log_envelope(self, ref: list[float]) -> tuple[float, float, float] | None:
        """(expected, log centre, log scale) of a reference, or None when it is too short."""
        if len(ref) < self.min_reference_points:
            return None
        logs = sorted(math.log1p(max(r, 0.0)) for r in ref)
        centre = _quantile(logs, 0.5)
        mad = _quantile(sorted(abs(x - centre) for x in logs), 0.5)
        return math.expm1(centre), centre, max(_MAD_TO_SIGMA * mad, self.min_log_scale)

    def _shift(
        self, value: float, history: Sequence[float], seasonal: Sequence[Sequence[float]]
    ) -> Verdict | None:
        """Sustained rise: the last shiftWindowPoints samples vs the same time of day on previous days."""
        k = self.shift_window_points
        if k <= 0 or len(history) < k - 1:
            return None
        env = self._log_envelope(self._seasonal_sums(seasonal, k))
        if env is None:
            return None
        expected, centre, scale = env
        count = _recent_count(value, history, k)
        threshold = max(math.expm1(centre + self.shift_z * scale), expected + self.min_change)
        return Verdict(
            firing=count >= threshold, value=count, expected=expected, threshold=threshold,
            score=count / threshold if threshold > 0 else math.inf, component="shift",
        )

    def _drop(
        self, value: float, history: Sequence[float], seasonal: Sequence[Sequence[float]]
    ) -> Verdict | None:
        """Drop: the last dropWindowPoints samples vs the recent past and the same time of day."""
        k = self.drop_window_points
        if k <= 0 or len(history) < k - 1:
            return None
        env = self._log_envelope(self._trailing_sums(history, k) + self._seasonal_sums(seasonal, k))
        if env is None:
            return None
        expected, centre, scale = env
        count = _recent_count(value, history, k)
        # fire when the count falls to `threshold` or below; a negative threshold never fires
        threshold = min(math.expm1(centre - self.drop_z * scale), expected - self.min_change)
        score = (threshold + 1.0) / (max(count, 0.0) + 1.0) if threshold >= 0 else 0.0
        return Verdict(
            firing=threshold >= 0 and count <= threshold, value=count, expected=expected,
            threshold=threshold, score=score, component="drop",
        )

    def evaluate(
        self, value: float, history: Sequence[float], seasonal: Sequence[Sequence[float]] = ()
    ) -> Verdict:
        spike = self._spike(value, history, seasonal)
        if not spike.ready:
            return spike
        best = spike
        for other in (self._shift(value, history, seasonal), self._drop(value, history, seasonal)):
            if other is not None and other.score > best.score:
                best = other
        return best

    def _spike(
        self, value: float, history: Sequence[float], seasonal: Sequence[Sequence[float]] = ()
    ) -> Verdict:
        k = self.window_points
        count = _recent_count(value, history, k)
        ref = self.reference(history, seasonal)
        if len(ref) < self.min_reference_points or len(history) < k - 1:
            return Verdict(
                firing=False, value=count, expected=None, threshold=math.inf, score=0.0, ready=False,
                component="spike",
            )
        ref.sort()
        expected = _quantile(ref, 0.5)
        upper = _quantile(ref, self.upper_quantile)
        mu = max(expected, 0.5)
        nb = nb_upper_quantile(round(mu, 6), self.dispersion, self.max_p_value)
        threshold = max(
            self.min_count,
            self.factor * expected,
            expected + self.upper_factor * (upper - expected),
            float(nb),
        )
        p_value = math.exp(nb_log_sf(count, mu, self.dispersion))
        return Verdict(
            firing=count >= threshold,
            value=count,
            expected=expected,
            threshold=threshold,
            score=count / threshold if threshold > 0 else math.inf,
            p_value=p_value,
            component="spike",
        )


# --------------------------------------------------------------------------------------------
# Configuration: spec.detector dicts
# --------------------------------------------------------------------------------------------

class Parameter(NamedTuple):
    """One field of a detector block: the parser's table, which ``incidentctl lint`` uses as it is and a unit
    test holds in step with the CRD schema and docs/detection.md."""

    name: str  # camelCase, as in the manifest
    attr: str  # the detector's attribute
    kind: type[int] | type[float]
    default: float | None  # None: required
    minimum: float
    maximum: float
    description: str


THRESHOLD_PARAMETERS: tuple[Parameter, ...] = (
    Parameter("value", "value_threshold", float, None, 0.0, 1e15,
              "Fire when the value is greater than or equal to this (must be > 0)."),
)

BASELINE_PARAMETERS: tuple[Parameter, ...] = tuple(Parameter(*row) for row in (
    ("windowPoints", "window_points", int, 6, 1, 60,
     "Consecutive samples summed into the tested count (6 x 5m = 30 minutes)."),
    ("trailingPoints", "trailing_points", int, 288, 12, 720,
     "Windowed counts from the recent past in the reference (288 x 5m = 1 day)."),
    ("seasonalDays", "seasonal_days", int, 7, 0, 14,
     "Previous days whose same time of day joins the reference (0 = trailing only)."),
    ("seasonalHalfWidthPoints", "seasonal_half_width_points", int, 12, 0, 72,
     "Samples either side of the same time of day on each seasonal day (12 x 5m = 1 hour)."),
    ("upperQuantile", "upper_quantile", float, 0.99, 0.5, 1.0,
     "Quantile of the reference taken as the top of the normal range."),
    ("upperFactor", "upper_factor", float, 4.0, 1.0, 100.0,
     "The count must exceed the baseline by upperFactor x (upper quantile - baseline)."),
    ("factor", "factor", float, 3.0, 1.0, 1000.0,
     "The count must also reach factor x the baseline (median of the reference)."),
    ("minCount", "min_count", float, 10.0, 0.0, 1e9,
     "Never fire below this many tickets in the window."),
    ("dispersion", "dispersion", float, 0.1, 0.0, 10.0,
     "Negative-binomial over-dispersion: variance = mean + dispersion x mean^2 (0 = Poisson)."),
    ("maxPValue", "max_p_value", float, 1e-6, 1e-12, 0.5,
     "The count must also be this improbable under that negative binomial."),
    ("minReferencePoints", "min_reference_points", int, 72, 1, 2000,
     "Do not fire until the reference holds this many windowed counts (warm-up)."),
    ("shiftWindowPoints", "shift_window_points", int, 36, 0, 144,
     "Shift test: samples summed into the tested count (36 x 5m = 3 hours); 0 turns the test off."),
    ("shiftZ", "shift_z", float, 10.0, 1.0, 100.0,
     "Shift test: robust z-score (log scale) above the same time of day on previous days."),
    ("dropWindowPoints", "drop_window_points", int, 12, 0, 144,
     "Drop test: samples summed into the tested count (12 x 5m = 1 hour); 0 turns the test off."),
    ("dropZ", "drop_z", float, 8.0, 1.0, 100.0,
     "Drop test: robust z-score (log scale) below the recent past and the same time of day."),
    ("minLogScale", "min_log_scale", float, 0.2, 0.01, 10.0,
     "Shift and drop tests: floor of the robust log-scale spread (1.4826 x MAD of log(1 + count))."),
    ("minChange", "min_change", float, 30.0, 0.0, 1e9,
     "Shift and drop tests: the count must differ from the median by at least this many tickets."),
))

#: Defaults of the ``baseline`` block, camelCase.
BASELINE_DEFAULTS: dict[str, Any] = {p.name: p.default for p in BASELINE_PARAMETERS}

#: What a DetectionRule gets when it says nothing about its detector (the benchmarked configuration).
DEFAULT_DETECTOR_SPEC: dict[str, Any] = {"type": "baseline", "baseline": dict(BASELINE_DEFAULTS)}

_TYPES = ("threshold", "baseline")


def _number(path: str, raw: object, kind: type[int] | type[float], lo: float, hi: float) -> float | int:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        want = "an integer" if kind is int else "a number"
        raise InvalidDetector(f"{path} must be {want}, got {raw!r}")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise InvalidDetector(f"{path} must be finite, got {raw!r}")
    if kind is int:
        if isinstance(raw, float):
            if not raw.is_integer():
                raise InvalidDetector(f"{path} must be an integer, got {raw!r}")
            raw = int(raw)
    if not lo <= raw <= hi:
        raise InvalidDetector(f"{path} must be between {lo:g} and {hi:g}, got {raw!r}")
    return kind(raw)


def _block(spec: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    block = spec.get(name)
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise InvalidDetector(f"detector.{name} must be a mapping, got {type(block).__name__}")
    return block


def build_detector(spec: Mapping[str, Any] | None) -> Detector:
    """Build a detector from a DetectionRule's ``spec.detector`` dict.

    ``None`` or ``{}`` gives :data:`DEFAULT_DETECTOR_SPEC`. Examples::

        {"type": "threshold", "threshold": {"value": 15}}
        {"type": "baseline", "baseline": {"minCount": 20}}   # omitted fields take their defaults

    Raises :class:`InvalidDetector` (a ``ValueError``) naming the offending field.
    """
    if spec is None or (isinstance(spec, Mapping) and not spec):
        spec = DEFAULT_DETECTOR_SPEC
    if not isinstance(spec, Mapping):
        raise InvalidDetector(f"detector must be a mapping, got {type(spec).__name__}")
    kind = spec.get("type", "baseline")
    if kind not in _TYPES:
        raise InvalidDetector(f"detector.type must be one of {', '.join(_TYPES)}, got {kind!r}")
    unknown = sorted(set(spec) - {"type", *_TYPES})
    if unknown:
        raise InvalidDetector(
            f"unknown field(s) in detector: {', '.join(map(str, unknown))} "
            f"(allowed: type, threshold, baseline)"
        )
    other = "baseline" if kind == "threshold" else "threshold"
    if spec.get(other) is not None:
        raise InvalidDetector(
            f"detector.{other} is set but detector.type is {kind!r}; set only detector.{kind}"
        )

    if kind == "threshold":
        block = _block(spec, "threshold")
        extra = sorted(set(block) - {"value"})
        if extra:
            raise InvalidDetector(
                f"unknown field(s) in detector.threshold: {', '.join(map(str, extra))} (allowed: value)"
            )
        if "value" not in block:
            raise InvalidDetector("detector.threshold.value is required (fire when the query value >= it)")
        (param,) = THRESHOLD_PARAMETERS
        value = _number("detector.threshold.value", block["value"], param.kind, param.minimum, param.maximum)
        if value <= 0:
            raise InvalidDetector(f"detector.threshold.value must be > 0, got {block['value']!r}")
        return ThresholdDetector(value_threshold=float(value))

    block = _block(spec, "baseline")
    names = {p.name for p in BASELINE_PARAMETERS}
    extra = sorted(set(block) - names)
    if extra:
        raise InvalidDetector(
            f"unknown field(s) in detector.baseline: {', '.join(map(str, extra))} "
            f"(allowed: {', '.join(p.name for p in BASELINE_PARAMETERS)})"
        )
    kwargs: dict[str, Any] = {}
    for param in BASELINE_PARAMETERS:
        raw = block.get(param.name, param.default)
        kwargs[param.attr] = _number(f"detector.baseline.{param.name}", raw, param.kind, param.minimum,
                                     param.maximum)
    if kwargs["seasonal_days"] == 0 and kwargs["min_reference_points"] > kwargs["trailing_points"]:
        raise InvalidDetector(
            "detector.baseline.minReferencePoints cannot exceed trailingPoints when seasonalDays is 0 "
            "(the detector would never be ready)"
        )
    return BaselineDetector(**kwargs)
