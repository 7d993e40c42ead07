from _explore_common import *
import pickle
cat = sys.argv[1] if len(sys.argv) > 1 else "realTweets"
data = load(cat)
S = pickle.load(open(f"/tmp/seas_{cat}.pkl", "rb"))
C6 = pickle.load(open(f"/tmp/refstats_{cat}_6.pkl", "rb"))
keys = [k for k, _, _ in data]
def zlong(key, k, kind, a0):
    c, med, q9, mx = S[key][k]
    ref = {"z9": q9, "zmax": mx}[kind]
    return [0.0 if med[i] is None else (c[i]-med[i])/(ref[i]-med[i]+a0*k) for i in range(len(c))]
def zshort(key, qi=3):
    return [0.0 if st is None else (c-st[0])/(st[qi]-st[0]+1.0) for c, st in C6[key]]
Zs = [zshort(k) for k in keys]
for Ts in (4, 5, 6):
  for k in (36, 72):
    for kind, a0 in (("zmax", 0.1), ("zmax", 0.5), ("zmax", 1.0), ("z9", 0.1), ("z9", 1.0)):
        Zl = [zlong(key, k, kind, a0) for key in keys]
        row = []
        for Tl in ([2, 3, 4, 5, 6, 8] if kind == "zmax" else [4, 6, 8, 10, 12, 15]):
            als = [[a >= Ts or b >= Tl for a, b in zip(zs, zl)] for zs, zl in zip(Zs, Zl)]
            sc = score(data, als)
            row.append(f"{Tl}:{sc.f1:.3f}({sc.hits},{sc.fp_events})")
        print(Ts, k, kind, a0, " ".join(row))
