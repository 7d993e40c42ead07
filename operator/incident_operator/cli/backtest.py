"""Backtest a DetectionRule on recorded series: what the operator would have done, row by row.

Replays a CSV series (``timestamp,value``: the rule's query output over time) through the rule as
the operator reads it -- parsed by the operator's own parser (``domain.detection.rules.parse_rule``,
after the CRD's defaults, so ``for``, ``cooldown``, ``detector.baseline.step`` and every detector
field mean what they mean in the cluster) -- and the same detector and episode state machine
(``domain.detection.episodes``). Writes ``timestamp,value,alarm`` where ``alarm`` is 1 on each row
at which the group is Firing (the detector's condition holds and has held for ``spec.for``).

The replay is causal and evaluates once per row: row ``i`` is evaluated with rows ``< i`` only, as
history (the last ``detector.history_points`` rows, at most the operator's fetch limit) and as
seasonal context (rows around the same time 1..N days earlier, chosen by timestamp). Rows are taken
to be the rule's history step apart (5m by default); a warning says when the file's spacing differs.

Timestamps that go backwards: a row whose timestamp is earlier than the row before it is skipped
(as Prometheus refuses an out-of-order sample) and counted; the file is still replayed, and the
summary line says how many rows were skipped and from which line. Repeated timestamps are kept.

Usage::

    python -m incident_operator.cli.backtest --series FILE.csv [--rule RULE.yaml] [--out FILE.csv]
    python -m incident_operator.cli.backtest --nab NAB_DIR --out OUT_DIR [--rule RULE.yaml]

Without ``--rule`` the rule is a DetectionRule with only a query: every field takes its CRD default
(the baseline detector, ``for: 0s``, ``cooldown: 30m``). ``--nab`` replays every
``NAB_DIR/data/<category>/<name>.csv`` into ``OUT_DIR/<category>/<name>.csv``; a file that cannot be
read is reported and the others are still replayed (exit code 1 then).
"""

from __future__ import annotations

import argparse
import bisect
import csv
import io
import math
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TextIO

import yaml

from incident_operator.domain.common.durations import format_duration
from incident_operator.domain.common.timeutil import parse_time
from incident_operator.domain.detection.detectors import Detector, Verdict
from incident_operator.domain.detection.episodes import FIRING, EpisodeState, Event, step
from incident_operator.domain.detection.rules import MAX_HISTORY_POINTS, InvalidRule, RuleSpec, parse_rule
from incident_operator.gitops.crds import as_the_api_server_stores_it

__all__ = ["main", "replay", "replay_rule", "default_rule", "load_rule", "read_series", "parse_timestamp",
           "ReplayRow", "Series"]

API_VERSION = "incidents.buttercream.io/v1alpha1"
KIND = "DetectionRule"
# The query of the rule used without --rule: never sent anywhere (the series is its output), but a
# DetectionRule needs one.
DEFAULT_QUERY = "sum(increase(support_tickets_created_total[5m]))"


class BacktestError(Exception):
    """A user-facing error (bad rule, bad CSV); main() prints it and exits 2."""


@dataclass(frozen=True)
class ReplayRow:
    verdict: Verdict
    alarm: bool
    event: Event


@dataclass(frozen=True)
class Series:
    raw_timestamps: list[str]
    raw_values: list[str]
    epochs: list[float]
    values: list[float]
    out_of_order: int = 0  # rows skipped because their timestamp went backwards
    first_out_of_order_line: int | None = None


def _rule(doc: Mapping[str, Any], source: str) -> RuleSpec:
    if doc.get("kind") != KIND:
        raise BacktestError(f"expected kind {KIND}, got {doc.get('kind')!r}")
    if doc.get("apiVersion") != API_VERSION:
        raise BacktestError(f"expected apiVersion {API_VERSION}, got {doc.get('apiVersion')!r}")
    if not isinstance(doc.get("spec") or {}, Mapping):
        raise BacktestError("spec must be a mapping")
    stored = as_the_api_server_stores_it(doc)
    meta = stored.get("metadata") or {}
    try:
        return parse_rule(str(meta.get("namespace") or "default"), str(meta.get("name") or "rule"),
                          stored.get("spec") or {})
    except InvalidRule as error:
        raise BacktestError(f"{source}: {error}") from None
    except (TypeError, ValueError, KeyError) as error:
        raise BacktestError(f"{source}: invalid rule ({error}); run incidentctl lint") from None


def rule_from_manifest(doc: Mapping[str, Any], source: str = "rule") -> RuleSpec:
    """A DetectionRule manifest, read as the operator reads it from the API server."""
    return _rule(doc, source)


def default_rule() -> RuleSpec:
    """The rule used without --rule: only a query, every other field at its CRD default."""
    return _rule({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "default"},
                  "spec": {"query": DEFAULT_QUERY}}, "default rule")


def load_rule(path: Path) -> RuleSpec:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise BacktestError(f"cannot read rule {path}: {exc}") from None
    rules = [d for d in docs if isinstance(d, Mapping) and d.get("kind") == KIND]
    if not rules:
        raise BacktestError(f"{path} holds no {KIND} manifest")
    if len(rules) > 1:
        raise BacktestError(f"{path} holds {len(rules)} {KIND} manifests; pass a file with exactly one")
    return rule_from_manifest(rules[0], str(path))


def parse_timestamp(text: str) -> float:
    """Epoch seconds from an ISO-8601 timestamp (naive = UTC, as in NAB) or a plain epoch number."""
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        moment = parse_time(s, assume_utc=True)
    except ValueError:
        moment = None
    if moment is None:
        raise BacktestError(f"bad timestamp {text!r} (want e.g. '2015-03-01 12:00:00' or epoch seconds)")
    return moment.timestamp()


def read_series(fh: TextIO, source: str = "<series>") -> Series:
    """Read ``timestamp,value`` CSV in time order; rows whose timestamp goes backwards are skipped and
    counted (repeated timestamps are kept as separate rows)."""
    reader = csv.reader(fh)
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
        raise BacktestError(f"{source}: expected a header 'timestamp,value', got {header!r}")
    series = Series([], [], [], [])
    skipped, first_skipped = 0, None
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
        if series.epochs and t < series.epochs[-1]:
            skipped += 1
            first_skipped = first_skipped or lineno
            continue
        series.raw_timestamps.append(row[0])
        series.raw_values.append(row[1])
        series.epochs.append(t)
        series.values.append(v)
    if skipped:
        series = Series(series.raw_timestamps, series.raw_values, series.epochs, series.values, skipped,
                        first_skipped)
    return series


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
    *,
    history_limit: int | None = None,
) -> list[ReplayRow]:
    """Evaluate every row causally and run the episode state machine over the verdicts.

    ``history_limit``: at most this many history rows (the operator's fetch limit, for a rule)."""
    n = len(values)
    step_s = statistics.median(b - a for a, b in zip(epochs, epochs[1:], strict=False)) if n > 1 else 60.0
    hp = detector.history_points if history_limit is None else min(detector.history_points, history_limit)
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


def replay_rule(epochs: Sequence[float], values: Sequence[float], rule: RuleSpec) -> list[ReplayRow]:
    """:func:`replay` with everything taken from the parsed rule, as the operator evaluates it."""
    return replay(epochs, values, rule.detector, rule.for_s, rule.cooldown_s,
                  history_limit=MAX_HISTORY_POINTS)


def _write(
    out: TextIO, raw_ts: Sequence[str], raw_v: Sequence[str], rows: Sequence[ReplayRow], details: bool
) -> None:
    w = csv.writer(out, lineterminator="\n")
    header = ["timestamp", "value", "alarm"]
    if details:
        header += ["count", "expected", "threshold", "score", "event"]
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
                r.event or "",
            ]
        w.writerow(line)


@dataclass
class FileResult:
    alarms: int  # rows at which the group is Firing
    incidents: int  # episodes opened (one incident each)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.alarms} alarm rows, {self.incidents} incident{'s' if self.incidents != 1 else ''}"
        return "; ".join([text, *self.notes])


def _spacing_note(series: Series, rule: RuleSpec) -> str | None:
    if len(series.epochs) < 2 or not rule.history_step_s:
        return None
    spacing = statistics.median(b - a for a, b in zip(series.epochs, series.epochs[1:], strict=False))
    if abs(spacing - rule.step_s) <= 0.01 * rule.step_s:
        return None
    return (f"warning: rows are {format_duration(spacing)} apart but the rule's history step is "
            f"{format_duration(rule.step_s)}; the replay counts rows, not "
            f"{format_duration(rule.step_s)} samples")


def backtest_file(src: Path, rule: RuleSpec, out: TextIO, details: bool = False) -> FileResult:
    """Replay one CSV file into ``out``."""
    with open(src, newline="") as fh:
        series = read_series(fh, str(src))
    rows = replay_rule(series.epochs, series.values, rule)
    _write(out, series.raw_timestamps, series.raw_values, rows, details)
    result = FileResult(alarms=sum(r.alarm for r in rows), incidents=sum(r.event == "open" for r in rows))
    if series.out_of_order:
        plural = "s" if series.out_of_order != 1 else ""
        result.notes.append(f"skipped {series.out_of_order} out-of-order row{plural} (timestamp earlier than "
                            f"the row before; first at line {series.first_out_of_order_line})")
    note = _spacing_note(series, rule)
    if note:
        result.notes.append(note)
    return result


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
        description="Replay recorded series through a DetectionRule as the operator evaluates it "
                    "(its own parser, detector and episode logic), one evaluation per row.",
        epilog="Rows whose timestamp goes backwards are skipped (as Prometheus refuses an out-of-order "
               "sample) and counted in the file's summary line on stderr; the file is still replayed. "
               "With --nab, a file that cannot be read is reported and the other files are still "
               "replayed (exit code 1).",
    )
    p.add_argument(
        "--rule", type=Path,
        help="DetectionRule manifest (YAML); default: a rule with only a query (CRD defaults: baseline "
             "detector, for 0s, cooldown 30m)",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--series", type=Path, help="CSV with header timestamp,value")
    src.add_argument("--nab", type=Path, help="NAB directory: replays every data/<category>/<name>.csv")
    p.add_argument(
        "--out", type=Path, help="output CSV (--series; default stdout) or directory (--nab; required)"
    )
    p.add_argument("--category", action="append", help="with --nab: only these categories (repeatable)")
    p.add_argument(
        "--details", action="store_true",
        help="add columns count,expected,threshold,score,event (debugging)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        rule = load_rule(args.rule) if args.rule else default_rule()
        if args.series is not None:
            if args.out is None:
                buf = io.StringIO()
                result = backtest_file(args.series, rule, buf, args.details)
                sys.stdout.write(buf.getvalue())
            else:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with open(args.out, "w", newline="") as fh:
                    result = backtest_file(args.series, rule, fh, args.details)
            print(f"{args.series}: {result.summary()}", file=sys.stderr)
            return 0
        if args.out is None:
            raise BacktestError("--nab needs --out DIR")
        files = list(_nab_files(args.nab))
        if args.category:
            files = [f for f in files if f.parent.name in set(args.category)]
        if not files:
            raise BacktestError(f"no series found under {args.nab / 'data'}")
        failed = 0
        for src in files:
            rel = src.relative_to(args.nab / "data")
            dst = args.out / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(dst, "w", newline="") as fh:
                    result = backtest_file(src, rule, fh, args.details)
            except (BacktestError, OSError) as exc:  # one bad file never stops the batch
                failed += 1
                dst.unlink(missing_ok=True)
                print(f"{rel}: not replayed: {exc}", file=sys.stderr)
                continue
            print(f"{rel}: {result.summary()}", file=sys.stderr)
        if failed:
            print(f"{failed} of {len(files)} files not replayed", file=sys.stderr)
        return 1 if failed else 0
    except BacktestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
