"""Backtest a DetectionRule's detector on recorded series.

Replays a CSV series (``timestamp,value``) through the SAME detector (``domain.detection.detectors``) and
episode state machine (``domain.detection.episodes``) the operator runs, and writes ``timestamp,value,alarm``
where ``alarm`` is 1 on each row at which the group is Firing (the detector's condition holds and
has held for the rule's ``spec.for``).

The replay is causal: row ``i`` is evaluated with rows ``< i`` only, as history (the last
``detector.history_points`` rows) and as seasonal context (rows around the same time 1..N days
earlier, chosen by timestamp).

Usage::

    python -m incident_operator.cli.backtest --series FILE.csv [--rule RULE.yaml] [--out FILE.csv]
    python -m incident_operator.cli.backtest --nab NAB_DIR --out OUT_DIR [--rule RULE.yaml]

Without ``--rule`` the default detector (``DEFAULT_DETECTOR_SPEC``) is used with ``for: 0s``.
``--nab`` replays every ``NAB_DIR/data/<category>/<name>.csv`` into ``OUT_DIR/<category>/<name>.csv``.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import io
import math
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TextIO

import yaml

from incident_operator.domain.detection.detectors import (
    DEFAULT_DETECTOR_SPEC,
    Detector,
    InvalidDetector,
    Verdict,
    build_detector,
)
from incident_operator.domain.common.durations import parse_duration
from incident_operator.domain.detection.episodes import FIRING, EpisodeState, step

__all__ = ["main", "replay", "RuleSettings", "load_rule", "read_series", "parse_timestamp", "ReplayRow"]

API_VERSION = "incidents.buttercream.io/v1alpha1"
KIND = "DetectionRule"


class BacktestError(Exception):
    """A user-facing error (bad rule, bad CSV); main() prints it and exits 2."""


@dataclass(frozen=True)
class RuleSettings:
    detector_spec: Mapping[str, Any]
    for_s: float = 0.0
    cooldown_s: float = 0.0
    name: str = "default"


@dataclass(frozen=True)
class ReplayRow:
    verdict: Verdict
    alarm: bool
    event: str | None


def _duration(spec: Mapping[str, Any], key: str) -> float:
    raw = spec.get(key)
    if raw is None:
        return 0.0
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raise BacktestError(f"spec.{key} must be a duration string such as '0s' or '5m', got {raw!r}")
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise BacktestError(f"spec.{key}: {exc}") from None


def rule_from_manifest(doc: Mapping[str, Any]) -> RuleSettings:
    if doc.get("kind") != KIND:
        raise BacktestError(f"expected kind {KIND}, got {doc.get('kind')!r}")
    if doc.get("apiVersion") != API_VERSION:
        raise BacktestError(f"expected apiVersion {API_VERSION}, got {doc.get('apiVersion')!r}")
    spec = doc.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise BacktestError("spec must be a mapping")
    detector_spec = spec.get("detector") or DEFAULT_DETECTOR_SPEC
    try:
        build_detector(detector_spec)
    except InvalidDetector as exc:
        raise BacktestError(f"spec.{exc}" if str(exc).startswith("detector") else str(exc)) from None
    name = (doc.get("metadata") or {}).get("name", "rule")
    return RuleSettings(
        detector_spec=detector_spec,
        for_s=_duration(spec, "for"),
        cooldown_s=_duration(spec, "cooldown"),
        name=str(name),
    )


def load_rule(path: Path) -> RuleSettings:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise BacktestError(f"cannot read rule {path}: {exc}") from None
    rules = [d for d in docs if isinstance(d, Mapping) and d.get("kind") == KIND]
    if not rules:
        raise BacktestError(f"{path} holds no {KIND} manifest")
    if len(rules) > 1:
        raise BacktestError(f"{path} holds {len(rules)} {KIND} manifests; pass a file with exactly one")
    return rule_from_manifest(rules[0])


def parse_timestamp(text: str) -> float:
    """Epoch seconds from an ISO-8601 timestamp (naive = UTC, as in NAB) or a plain epoch number."""
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise BacktestError(
            f"bad timestamp {text!r} (want e.g. '2015-03-01 12:00:00' or epoch seconds)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def read_series(
    fh: TextIO, source: str = "<series>"
) -> tuple[list[str], list[str], list[float], list[float]]:
    """Read ``timestamp,value`` CSV (time order; repeated timestamps are kept as separate rows).

    Returns (raw timestamps, raw values, epoch seconds, values).
    """
    reader = csv.reader(fh)
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
        raise BacktestError(f"{source}: expected a header 'timestamp,value', got {header!r}")
    raw_ts: list[str] = []
    raw_v: list[str] = []
    epochs: list[float] = []
    values: list[float] = []
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) < 2:
            raise BacktestError(f"{source}:{lineno}: expected 2 columns, got {row!r}")
        t = parse_timestamp(row[0])
        try:
            v = float(row[1])
        except ValueError:
            raise BacktestError(f"{source}:{lineno}: value {row[1]!r} is not a number") from None
        if not math.isfinite(v):
            raise BacktestError(f"{source}:{lineno}: value {row[1]!r} is not finite")
        if epochs and t < epochs[-1]:
            raise BacktestError(f"{source}:{lineno}: timestamps must not go backwards")
        raw_ts.append(row[0])
        raw_v.append(row[1])
        epochs.append(t)
        values.append(v)
    return raw_ts, raw_v, epochs, values


def _seasonal(
    detector: Detector, epochs: Sequence[float], values: Sequence[float], i: int, step_s: float
) -> list[list[float]]:
    out: list[list[float]] = []
    now = epochs[i]
    half = step_s / 2.0
    for w in detector.seasonal_windows:
        centre = now - w.lag_s
        lo = bisect.bisect_left(epochs, centre - w.points_before * step_s - half, 0, i)
        hi = bisect.bisect_right(epochs, centre + w.points_after * step_s + half, 0, i)  # rows < i only
        if hi > lo:
            out.append(list(values[lo:hi]))
    return out


def replay(
    epochs: Sequence[float],
    values: Sequence[float],
    detector: Detector,
    for_s: float = 0.0,
    cooldown_s: float = 0.0,
) -> list[ReplayRow]:
    """Evaluate every row causally and run the episode state machine over the verdicts."""
    n = len(values)
    step_s = statistics.median(b - a for a, b in zip(epochs, epochs[1:], strict=False)) if n > 1 else 60.0
    hp = detector.history_points
    uses_seasonal = bool(detector.seasonal_windows)
    state = EpisodeState()
    rows: list[ReplayRow] = []
    for i in range(n):
        history = values[max(0, i - hp) : i] if hp else ()
        seasonal = _seasonal(detector, epochs, values, i, step_s) if uses_seasonal else ()
        verdict = detector.evaluate(values[i], history, seasonal)
        state, event = step(state, verdict.firing, epochs[i], for_s, cooldown_s)
        rows.append(ReplayRow(verdict=verdict, alarm=state.phase == FIRING, event=event))
    return rows


def _write(
    out: TextIO, raw_ts: Sequence[str], raw_v: Sequence[str], rows: Sequence[ReplayRow], details: bool
) -> None:
    w = csv.writer(out, lineterminator="\n")
    header = ["timestamp", "value", "alarm"]
    if details:
        header += ["count", "expected", "threshold", "score"]
    w.writerow(header)
    for t, v, r in zip(raw_ts, raw_v, rows, strict=True):
        line: list[Any] = [t, v, int(r.alarm)]
        if details:
            vd = r.verdict
            line += [
                f"{vd.value:g}",
                "" if vd.expected is None else f"{vd.expected:g}",
                f"{vd.threshold:g}",
                f"{vd.score:.4g}",
            ]
        w.writerow(line)


def backtest_file(src: Path, rule: RuleSettings, out: TextIO, details: bool = False) -> int:
    """Replay one CSV file into ``out``; returns the number of alarm rows."""
    with open(src, newline="") as fh:
        raw_ts, raw_v, epochs, values = read_series(fh, str(src))
    detector = build_detector(rule.detector_spec)
    rows = replay(epochs, values, detector, rule.for_s, rule.cooldown_s)
    _write(out, raw_ts, raw_v, rows, details)
    return sum(r.alarm for r in rows)


def _nab_files(nab_dir: Path) -> Iterable[Path]:
    data = nab_dir / "data"
    if not data.is_dir():
        raise BacktestError(
            f"{nab_dir} has no data/ directory (expected NAB layout data/<category>/<name>.csv)"
        )
    return sorted(p for p in data.glob("*/*.csv") if p.is_file())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="incident-backtest",
        description="Replay recorded series through a DetectionRule's detector and episode logic.",
    )
    p.add_argument(
        "--rule", type=Path, help="DetectionRule manifest (YAML); default: the default detector, for 0s"
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--series", type=Path, help="CSV with header timestamp,value")
    src.add_argument("--nab", type=Path, help="NAB directory: replays every data/<category>/<name>.csv")
    p.add_argument(
        "--out", type=Path, help="output CSV (--series; default stdout) or directory (--nab; required)"
    )
    p.add_argument("--category", action="append", help="with --nab: only these categories (repeatable)")
    p.add_argument(
        "--details", action="store_true", help="add columns count,expected,threshold,score (debugging)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        rule = load_rule(args.rule) if args.rule else RuleSettings(detector_spec=DEFAULT_DETECTOR_SPEC)
        if args.series is not None:
            if args.out is None:
                buf = io.StringIO()
                backtest_file(args.series, rule, buf, args.details)
                sys.stdout.write(buf.getvalue())
            else:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with open(args.out, "w", newline="") as fh:
                    backtest_file(args.series, rule, fh, args.details)
            return 0
        if args.out is None:
            raise BacktestError("--nab needs --out DIR")
        files = list(_nab_files(args.nab))
        if args.category:
            files = [f for f in files if f.parent.name in set(args.category)]
        if not files:
            raise BacktestError(f"no series found under {args.nab / 'data'}")
        for src in files:
            rel = src.relative_to(args.nab / "data")
            dst = args.out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            with open(dst, "w", newline="") as fh:
                alarms = backtest_file(src, rule, fh, args.details)
            print(f"{rel}: {alarms} alarm rows", file=sys.stderr)
        return 0
    except BacktestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
