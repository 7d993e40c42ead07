from _explore_common import *
import pickle, math, itertools
cat = sys.argv[1] if len(sys.argv) > 1 else "realTweets"
data = load(cat)
S = pickle.load(open(f"/tmp/seas_{cat}.pkl", "rb"))
keys = [k for k, _, _ in data]
def z(key, k, kind, a0):
    c, med, q9, mx = S[key][k]
    ref = {"z9": q9, "zmax": mx}[kind]
    return [0.0 if med[i] is None else (c[i]-med[i])/(ref[i]-med[i]+a0*k) for i in range(len(c))]
res = []
for kind, a0 in (("z9", 0.1), ("z9", 1), ("zmax", 0.1), ("zmax", 0.5)):
    for k in (6, 12, 36, 72):
        Z = [z(key, k, kind, a0) for key in keys]
        for Dd in (2, 3, 5, 7):
            for gap in (k, 72):
                TM = [trailing_max(zz, gap, 288*Dd) for zz in Z]
                hi = max(max(zz) for zz in Z)
                for T in ([1, 2, 3, 4, 5, 6, 8, 10, 12, 15] if kind == "z9" else [0.5, 1, 1.5, 2, 2.5, 3, 4, 5]):
                    for m in (1.0, 1.2, 1.5):
                        als = [[x >= T and x >= m * (t if t is not None else 0) for x, t in zip(zz, tt)] for zz, tt in zip(Z, TM)]
                        sc = score(data, als)
                        res.append((round(sc.f1, 3), kind, a0, k, Dd, gap, T, m, fmt(sc)))
res.sort(reverse=True)
for r in res[:40]: print(r)
pickle.dump(res, open("/tmp/res7.pkl", "wb"))
