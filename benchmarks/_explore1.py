from _explore_common import *
import itertools
data = load("realTweets")
res = []
for k in (1, 3, 6, 12, 24):
    W = [wsum(vs, k) for _, _, vs in data]
    for Ldays in (1, 2, 3, 5, 7):
        L = 288 * Ldays
        TM = [trailing_max(w, k, k + L - 1) for w in W]
        for m in (1.0, 1.2, 1.5, 2.0):
            als = []
            for w, tm in zip(W, TM):
                als.append([tm is not None and i >= 288 and w[i] > m * tm for i, tm in enumerate(tm)])
            s = score(data, als)
            res.append((s.f1, k, Ldays, m, fmt(s)))
res.sort(reverse=True)
for r in res[:25]: print(r)
