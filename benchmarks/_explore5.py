from _explore_common import *
import pickle, math, statistics
cat = sys.argv[1] if len(sys.argv) > 1 else "realTweets"
data = load(cat)
KS = (6, 12, 36, 72)
H = 6
out = {}
for key, ts, vs in data:
    per_day = round(86400 / statistics.median((b - a).total_seconds() for a, b in zip(ts, ts[1:])))
    d = {}
    for k in KS:
        c = wsum(vs, k)
        med = [None]*len(c); q9 = [None]*len(c); mx = [None]*len(c)
        for i in range(len(c)):
            ref = []
            for dd in range(1, 8):
                j = i - dd*per_day
                if j - H < k: break
                ref.extend(c[j-H:j+H+1])
            if len(ref) < 2*(2*H+1): continue
            ref.sort()
            n = len(ref)
            med[i] = ref[n//2]; q9[i] = ref[int(0.9*(n-1))]; mx[i] = ref[-1]
        d[k] = (c, med, q9, mx)
    out[key] = d
    print(key, file=sys.stderr)
pickle.dump(out, open(f"/tmp/seas_{cat}.pkl", "wb"))
