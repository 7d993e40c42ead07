from _explore_common import *
import statistics
data = {k: (ts, vs) for k, ts, vs in load("realTweets")}
targets = [("AMZN", [0,1,2,3]), ("PFE", [0,3]), ("GOOG", [1,2]), ("UPS", [1,2,4]), ("CRM", [2]), ("CVS",[0,1,2])]
for name, wis in targets:
    key = f"realTweets/Twitter_volume_{name}.csv"
    ts, vs = data[key]
    for wi in wis:
        a, b = WINDOWS[key][wi]
        idx = [i for i, t in enumerate(ts) if a <= t <= b]
        i0, i1 = idx[0], idx[-1]
        print(f"{name} win{wi} {a} .. {b} rows {i0}-{i1}")
        lo = max(0, i0 - 144); hi = min(len(vs), i1 + 144)
        line = []
        for h in range(lo, hi, 12):
            s = sum(vs[h:h+12])
            past = [sum(vs[h-d*288:h-d*288+12]) for d in range(1, 8) if h-d*288 >= 0]
            med = statistics.median(past) if past else 0
            mark = "*" if i0 <= h <= i1 else " "
            line.append(f"{mark}{ts[h].strftime('%d %H')}:{s:.0f}/{med:.0f}")
        for j in range(0, len(line), 10): print("   ", " ".join(line[j:j+10]))
