"""Event-level scoring of alarm series against NAB's labelled anomaly windows.

This implements the "Scoring detections the way an incident tool is judged" metric of
``../shared/data/nab/README.md`` exactly:

* an **alarm event** is a run of consecutive rows whose ``alarm`` is 1 (one incident opened);
* a labelled **window** is **hit** when at least one alarm row falls inside it, bounds inclusive;
* a **false-positive event** is an alarm event that touches no window;
* like NAB, the first ``min(floor(0.15 * rows), 750)`` rows of each file are a warm-up: alarm
  rows there do not count (they are treated as 0 before events are formed);
* ``recall = hits / windows``, ``precision = hits / (hits + FP events)``, F1 their harmonic mean.

It also reports the *first-alarm delay*: for each hit window, the time from the labelled anomaly
point inside the window (the earliest one, if NAB merged several labels into one window) to the
first alarm row inside the window, in minutes; negative means the alarm came before the label.

Pure standard library; importable by the benchmark script and by unit tests.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Sequence

__all__ = [
    "FileScore",
    "Score",
    "parse_ts",
    "probation_rows",
    "score_file",
    "combine",
    "load_labels",
    "read_alarm_csv",
]


def parse_ts(text: str) -> datetime:
    """Parse a NAB timestamp (``2015-03-03 04:37:53`` with optional ``.ffffff``)."""
    return datetime.fromisoformat(text.strip())


def probation_rows(rows: int) -> int:
    """Number of leading rows NAB ignores when scoring: ``min(floor(0.15 * rows), 750)``."""
    return min(math.floor(0.15 * rows), 750)


@dataclass(frozen=True)
class FileScore:
    name: str
    windows: int
    hits: int
    fp_events: int
    tp_events: int
    delays_min: tuple[float, ...] = ()


@dataclass(frozen=True)
class Score:
    windows: int
    hits: int
    fp_events: int
    tp_events: int
    delays_min: tuple[float, ...] = ()
    files: tuple[FileScore, ...] = field(default=())

    @property
    def precision(self) -> float | None:
        d = self.hits + self.fp_events
        return None if d == 0 else self.hits / d

    @property
    def recall(self) -> float:
        return 0.0 if self.windows == 0 else self.hits / self.windows

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        if p is None or p + r == 0:
            return 0.0
        return 2 * p * r / (p + r)

    @property
    def median_delay_min(self) -> float | None:
        return statistics.median(self.delays_min) if self.delays_min else None


def score_file(
    timestamps: Sequence[datetime],
    alarms: Sequence[int | bool],
    windows: Iterable[tuple[datetime, datetime]],
    labels: Iterable[datetime] = (),
    name: str = "",
) -> FileScore:
    """Score one series. ``timestamps`` and ``alarms`` are row-aligned; windows are inclusive."""
    if len(timestamps) != len(alarms):
        raise ValueError("timestamps and alarms must have the same length")
    n = len(timestamps)
    skip = probation_rows(n)
    alarm = [bool(a) and i >= skip for i, a in enumerate(alarms)]
    wins = sorted(windows)
    labs = sorted(labels)

    def window_of(ts: datetime) -> int | None:
        for k, (a, b) in enumerate(wins):
            if a <= ts <= b:
                return k
        return None

    # Alarm events: runs of consecutive alarm rows.
    hit = [False] * len(wins)
    first_alarm: list[datetime | None] = [None] * len(wins)
    fp_events = tp_events = 0
    i = 0
    while i < n:
        if not alarm[i]:
            i += 1
            continue
        j = i
        touched = False
        while j < n and alarm[j]:
            k = window_of(timestamps[j])
            if k is not None:
                touched = True
                hit[k] = True
                if first_alarm[k] is None:
                    first_alarm[k] = timestamps[j]
            j += 1
        if touched:
            tp_events += 1
        else:
            fp_events += 1
        i = j

    delays: list[float] = []
    for k, (a, b) in enumerate(wins):
        fa = first_alarm[k]
        if fa is None:
            continue
        inside = [t for t in labs if a <= t <= b]
        if inside:
            delays.append((fa - inside[0]).total_seconds() / 60.0)
    return FileScore(
        name=name,
        windows=len(wins),
        hits=sum(hit),
        fp_events=fp_events,
        tp_events=tp_events,
        delays_min=tuple(delays),
    )


def combine(files: Iterable[FileScore]) -> Score:
    fs = tuple(files)
    return Score(
        windows=sum(f.windows for f in fs),
        hits=sum(f.hits for f in fs),
        fp_events=sum(f.fp_events for f in fs),
        tp_events=sum(f.tp_events for f in fs),
        delays_min=tuple(d for f in fs for d in f.delays_min),
        files=fs,
    )


def load_labels(
    nab_dir: Path,
) -> tuple[dict[str, list[tuple[datetime, datetime]]], dict[str, list[datetime]]]:
    """Return (windows, labels) keyed by ``<category>/<file>.csv``."""
    raw_w = json.loads((nab_dir / "labels" / "combined_windows.json").read_text())
    raw_l = json.loads((nab_dir / "labels" / "combined_labels.json").read_text())
    windows = {k: [(parse_ts(a), parse_ts(b)) for a, b in v] for k, v in raw_w.items()}
    labels = {k: [parse_ts(t) for t in v] for k, v in raw_l.items()}
    return windows, labels


def read_alarm_csv(path: Path) -> tuple[list[datetime], list[int]]:
    """Read a ``timestamp,...,alarm`` CSV (as written by the backtest CLI)."""
    ts: list[datetime] = []
    al: list[int] = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            ts.append(parse_ts(row["timestamp"]))
            al.append(int(float(row["alarm"])))
    return ts, al
