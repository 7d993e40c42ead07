"""Cache per-row reference statistics (causal) for exploration."""
from _explore_common import *
import pickle, statistics, sys
from incident_operator.cli.backtest import _seasonal
from incident_operator.domain.detectors import BaselineDetector, _quantile
from datetime import timezone
cat = sys.argv[1]
k = int(sys.argv[2]) if len(sys.argv) > 2 else 6
data = load(cat)
det = BaselineDetector(window_points=k)
out = {}
for key, ts, vs in data:
    ep = [t.replace(tzinfo=timezone.utc).timestamp() for t in ts]
    step = statistics.median(b - a for a, b in zip(ep, ep[1:]))
    hp = det.history_points
    rows = []
    for i in range(len(vs)):
        hist = vs[max(0, i - hp):i]
        seas = _seasonal(det, ep, vs, i, step)
        c = vs[i] + sum(hist[-(k-1):]) if k > 1 else vs[i]
        ref = det.reference(hist, seas)
        if len(ref) < 72:
            rows.append((c, None)); continue
        ref.sort()
        rows.append((c, tuple(_quantile(ref, q) for q in (0.5, 0.9, 0.95, 0.99, 1.0))))
    out[key] = rows
    print(key, file=sys.stderr)
pickle.dump(out, open(f"/tmp/refstats_{cat}_{k}.pkl", "wb"))
