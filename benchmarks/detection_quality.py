#!/usr/bin/env python
"""Detection quality of the default spike detector on the NAB realTweets / realTraffic series.

    python benchmarks/detection_quality.py [NAB_DIR] [--category realTweets] [--detector JSON]
                                           [--for 0s] [--jobs 1] [--per-file]

NAB_DIR defaults to ``../shared/data/nab`` relative to the repository root (the data is never
copied into the repository). Every series is replayed through the operator's own detector and
episode code (``incident_operator.cli.backtest.replay``) -- causally, one configuration for every
file, no labels at detection time -- and scored with the event metric of NAB_DIR/README.md
("Scoring detections the way an incident tool is judged"), implemented in ``nab_scoring.py``.

The published detectors' figures printed alongside are copied at run time from the tables in
NAB_DIR/README.md (NAB detectors at their NAB-tuned thresholds, scored with the same metric).
This script prints figures; it never passes or fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from nab_scoring import FileScore, Score, combine, load_labels, parse_ts, score_file  # noqa: E402

from incident_operator.cli.backtest import read_series, replay  # noqa: E402
from incident_operator.domain.detection.detectors import DEFAULT_DETECTOR_SPEC, build_detector  # noqa: E402
from incident_operator.domain.common.durations import parse_duration  # noqa: E402

CATEGORIES = ("realTweets", "realTraffic")


def _score_one(args: tuple[str, str, dict[str, Any], float]) -> FileScore:
    nab_dir, key, spec, for_s = args
    nab = Path(nab_dir)
    windows, labels = load_labels(nab)
    with open(nab / "data" / key, newline="") as fh:
        series = read_series(fh, key)
    rows = replay(series.epochs, series.values, build_detector(spec), for_s=for_s)
    stamps = [parse_ts(t) for t in series.raw_timestamps]
    return score_file(stamps, [r.alarm for r in rows], windows.get(key, []), labels.get(key, []), name=key)


def published(readme: Path, category: str) -> list[list[str]]:
    """Rows of the README's published-detector table for ``category`` (as strings)."""
    text = readme.read_text()
    m = re.search(rf"^{category} \(.*?\):\s*\n\s*\n((?:\|.*\n?)+)", text, re.M)
    if not m:
        return []
    lines = [ln.strip() for ln in m.group(1).strip().splitlines()]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return [r for r in rows[2:] if len(r) >= 9]


def _fmt(x: float | None, nd: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def _delay(x: float | None) -> str:
    return "n/a" if x is None else f"{x:g}"


def report(category: str, score: Score, refs: list[list[str]], label: str, per_file: bool) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency
        Console = None  # type: ignore[assignment]

    ours = [
        label,
        "-",
        f"{score.hits} / {score.windows}",
        str(score.fp_events),
        str(score.tp_events),
        _fmt(score.precision),
        _fmt(score.recall),
        _fmt(score.f1),
        _delay(score.median_delay_min),
    ]
    header = ["detector", "threshold", "windows hit", "FP events", "TP events", "precision", "recall", "F1",
              "median first-alarm delay (min)"]
    title = f"{category} ({len(score.files)} series, {score.windows} windows)"
    if Console is not None:
        table = Table(title=title, title_justify="left")
        for h in header:
            table.add_column(h, justify="left" if h == "detector" else "right")
        table.add_row(*ours, style="bold green")
        for r in refs:
            table.add_row(*r[:9])
        console = Console(width=160)
        console.print(table)
        if per_file:
            ft = Table(title=f"{category}: per file (ours)", title_justify="left")
            for h in ("file", "windows hit", "FP events", "first-alarm delays (min)"):
                ft.add_column(h)
            for f in score.files:
                ft.add_row(f.name, f"{f.hits} / {f.windows}", str(f.fp_events),
                           ", ".join(f"{d:g}" for d in f.delays_min))
            console.print(ft)
    else:  # pragma: no cover
        print(title)
        for r in [header, ours, *refs]:
            print(" | ".join(r[:9]))


def main(argv: list[str] | None = None) -> int:
    default_nab = (REPO.parent / "shared" / "data" / "nab").resolve()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("nab_dir", nargs="?", type=Path, default=default_nab)
    p.add_argument("--category", action="append", choices=CATEGORIES)
    p.add_argument("--detector", help="detector spec as JSON (default: DEFAULT_DETECTOR_SPEC)")
    p.add_argument("--for", dest="for_", default="0s", help="the rule's sustain duration (default 0s)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--per-file", action="store_true", help="also print per-file figures")
    args = p.parse_args(argv)

    nab: Path = args.nab_dir
    if not (nab / "data").is_dir() or not (nab / "labels").is_dir():
        print(f"NAB data not found at {nab} (pass NAB_DIR)", file=sys.stderr)
        return 2
    spec = json.loads(args.detector) if args.detector else DEFAULT_DETECTOR_SPEC
    build_detector(spec)  # validate early
    for_s = parse_duration(args.for_)
    label = "incident-operator (default)" if not args.detector else "incident-operator (--detector)"
    windows, _ = load_labels(nab)

    print(f"NAB data: {nab}")
    print(f"detector: {json.dumps(spec, sort_keys=True)}  for: {args.for_}")
    print("metric: NAB README 'Scoring detections the way an incident tool is judged' (event-level);")
    print(f"published rows: copied from the tables in {nab / 'README.md'}")
    print("  (NAB detectors at their NAB-tuned thresholds, scored with the same metric)")
    for category in args.category or CATEGORIES:
        keys = sorted(k for k in windows if k.startswith(category + "/"))
        jobs = [(str(nab), k, spec, for_s) for k in keys]
        t0 = time.perf_counter()
        if args.jobs > 1:
            with ProcessPoolExecutor(max_workers=args.jobs) as ex:
                files = list(ex.map(_score_one, jobs))
        else:
            files = [_score_one(j) for j in jobs]
        score = combine(files)
        print()
        report(category, score, published(nab / "README.md", category), label, args.per_file)
        print(f"({time.perf_counter() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
