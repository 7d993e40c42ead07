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
def hold(al, H):
    out = []; last = -10**9
    for i, a in enumerate(al):
        if a: last = i
        out.append(i - last <= H)
    return out
res = []
for kind, a0 in (("z9", 0.1), ("zmax", 0.1), ("zmax", 0.5)):
    for k in (6, 12, 36, 72):
        Z = [z(key, k, kind, a0) for key in keys]
        for Dd in (0, 3, 5):
            TM = [trailing_max(zz, 72, 288*Dd) if Dd else [0]*len(zz) for zz in Z]
            for T in ([2, 3, 4, 5, 6, 8, 10, 12, 15, 20] if kind == "z9" else [1, 1.5, 2, 2.5, 3, 4, 5, 6]):
                for m in ((1.0, 1.5) if Dd else (1.0,)):
                    base = [[x >= T and x >= m * (t if t is not None else 0) for x, t in zip(zz, tt)] for zz, tt in zip(Z, TM)]
                    for H in (0, 12, 36, 72):
                        als = [hold(b, H) for b in base]
                        sc = score(data, als)
                        res.append((round(sc.f1, 3), kind, a0, k, Dd, T, m, H, fmt(sc)))
res.sort(reverse=True)
for r in res[:40]: print(r)
