from _explore_common import *
import statistics
data = load("realTweets")
for key, ts, vs in data:
    w6 = wsum(vs, 6)
    tm = trailing_max(w6, 6, 6 + 288*5 - 1)
    print(key, "rows", len(vs), "median", statistics.median(vs), "max", max(vs), "probation", min(int(0.15*len(vs)),750))
    for (a, b), lab in zip(WINDOWS[key], LABELS[key]):
        idx = [i for i, t in enumerate(ts) if a <= t <= b]
        i0, i1 = idx[0], idx[-1]
        li = min(range(len(ts)), key=lambda i: abs((ts[i]-lab).total_seconds()))
        seg = w6[i0:i1+1]
        imax = i0 + max(range(len(seg)), key=seg.__getitem__)
        ratio = max(seg[j-i0] / tm[j] if tm[j] else 0 for j in range(i0, i1+1))
        pre = statistics.median(vs[max(0,i0-2016):i0]) if i0 > 0 else 0
        print(f"  win {i0}-{i1} label@{li} val {vs[li]:.0f} w6max {max(seg):.0f}@{imax-li:+d} prev5dmax {tm[i0]} maxratio {ratio:.2f} med_before {pre:.0f} med_in {statistics.median(vs[i0:i1+1]):.0f} min_in {min(vs[i0:i1+1]):.0f}")
