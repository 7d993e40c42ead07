from _explore_common import *
import pickle, math, itertools
cat = sys.argv[1] if len(sys.argv) > 1 else "realTweets"
data = load(cat)
S = pickle.load(open(f"/tmp/seas_{cat}.pkl", "rb"))

def scale_score(key, k, kind, a0):
    c, med, q9, mx = S[key][k]
    out = []
    for i in range(len(c)):
        if med[i] is None: out.append(0.0); continue
        a = a0 * k
        if kind == "lr":
            out.append(math.log((c[i] + a) / (med[i] + a)))
        elif kind == "z9":
            out.append((c[i] - med[i]) / (q9[i] - med[i] + a))
        elif kind == "zmax":
            out.append((c[i] - med[i]) / (mx[i] - med[i] + a))
    return out

def best_thresh(scores, Ts):
    best = None
    for T in Ts:
        sc = score(data, [[x >= T for x in s] for s in scores])
        if best is None or sc.f1 > best[0]: best = (round(sc.f1, 3), T, fmt(sc))
    return best

keys = [k for k, _, _ in data]
for kind, a0s, Ts in (("lr", (0.5, 1, 2, 5), [0.5 + 0.1*j for j in range(30)]),
                      ("z9", (0.1, 0.5, 1), [1 + 0.5*j for j in range(30)]),
                      ("zmax", (0.1, 0.5, 1), [0.25 + 0.25*j for j in range(24)])):
    for a0 in a0s:
        per = {k: [scale_score(key, k, kind, a0) for key in keys] for k in (6, 12, 36, 72)}
        for k in (6, 12, 36, 72):
            print(kind, a0, "k", k, best_thresh(per[k], Ts))
        for combo in ((6, 36), (12, 72), (6, 12, 36, 72), (12, 36)):
            comb = [[max(per[k][f][i] for k in combo) for i in range(len(per[6][f]))] for f in range(len(keys))]
            print(kind, a0, "max", combo, best_thresh(comb, Ts))
