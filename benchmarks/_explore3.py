from _explore_common import *
import pickle, math
data = load("realTweets")
K = int(sys.argv[1]) if len(sys.argv) > 1 else 6
cache = pickle.load(open(f"/tmp/refstats_realTweets_{K}.pkl", "rb"))

def zscore(rows, qi=3, eps=1.0):
    out = []
    for c, st in rows:
        if st is None: out.append(0.0); continue
        med = st[0]; up = st[qi]
        out.append((c - med) / (up - med + eps))
    return out

def alarms_thresh(s, T):
    return [x >= T for x in s]

def sweep(S, Ts, label):
    best = None
    for T in Ts:
        sc = score(data, [alarms_thresh(s, T) for s in S])
        if best is None or sc.f1 > best[0]: best = (sc.f1, T, fmt(sc))
    print(label, best)

def record(s, D, gap, floor):
    # s_i / max(s over [i-D, i-gap]) with floor on denominator
    tm = trailing_max(s, gap, D)
    return [x / max(m if m is not None else floor, floor) for x, m in zip(s, tm)]

for qi, qn in ((3, "q99"), (2, "q95"), (4, "max")):
    Z = [zscore(cache[key], qi) for key, _, _ in data]
    sweep(Z, [1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 8, 10], f"z {qn}")
    for Dd in (2, 3, 5, 7):
        for floor in (1.0, 2.0, 3.0):
            R = [record(z, 288*Dd, 36, floor) for z in Z]
            # combine: fire when record ratio >= m AND z >= floor
            best = None
            for m in (1.0, 1.2, 1.5, 2.0):
                for zf in (floor, 1.5*floor, 2*floor):
                    als = [[r >= m and x >= zf for r, x in zip(rr, zz)] for rr, zz in zip(R, Z)]
                    sc = score(data, als)
                    if best is None or sc.f1 > best[0]: best = (sc.f1, m, zf, fmt(sc))
            print(f"  rec {qn} D={Dd} floor={floor}", best)
