"""Shared helpers for offline detector exploration (experiments only)."""
from __future__ import annotations
import sys, csv
from collections import deque
from pathlib import Path
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from nab_scoring import load_labels, parse_ts, score_file, combine  # noqa
NAB = (HERE.parent.parent / "shared" / "data" / "nab").resolve()
WINDOWS, LABELS = load_labels(NAB)

def load(category):
    out = []
    for key in sorted(k for k in WINDOWS if k.startswith(category + "/")):
        with open(NAB / "data" / key) as fh:
            r = csv.reader(fh); next(r)
            rows = [(a, float(b)) for a, b in r]
        ts = [parse_ts(a) for a, _ in rows]
        vs = [b for _, b in rows]
        out.append((key, ts, vs))
    return out

def wsum(vs, k):
    out = []; s = 0.0
    for i, v in enumerate(vs):
        s += v
        if i >= k: s -= vs[i - k]
        out.append(s)
    return out

def trailing_max(xs, lo_off, hi_off):
    """m[i] = max(xs[i-hi_off .. i-lo_off]) (inclusive), None if empty."""
    out = []; dq = deque()
    for i in range(len(xs)):
        j = i - lo_off
        if j >= 0:
            while dq and xs[dq[-1]] <= xs[j]: dq.pop()
            dq.append(j)
        while dq and dq[0] < i - hi_off: dq.popleft()
        out.append(xs[dq[0]] if dq else None)
    return out

def score(data, alarms_per_file):
    fs = []
    for (key, ts, vs), al in zip(data, alarms_per_file):
        fs.append(score_file(ts, al, WINDOWS.get(key, []), LABELS.get(key, []), name=key))
    return combine(fs)

def fmt(s):
    return f"F1 {s.f1:.3f} hits {s.hits}/{s.windows} FP {s.fp_events} P {s.precision or 0:.2f} R {s.recall:.2f}"
