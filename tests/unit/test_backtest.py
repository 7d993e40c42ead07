"""Unit tests for the backtest CLI and the duration parser (synthetic data in tmp_path only)."""

from __future__ import annotations

import csv
import io
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incident_operator.cli.backtest import main, replay
from incident_operator.domain.detection.detectors import build_detector
from incident_operator.domain.common.durations import format_duration, parse_duration

START = datetime(2015, 3, 1, tzinfo=timezone.utc)


def write_series(path: Path, values, step_s: int = 300) -> list[str]:
    fmt = "%Y-%m-%d %H:%M:%S"
    stamps = [(START + timedelta(seconds=i * step_s)).strftime(fmt) for i in range(len(values))]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value"])
        for t, v in zip(stamps, values, strict=True):
            w.writerow([t, v])
    return stamps


def read_out(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def synthetic(n: int = 600, spike_at: int = 500, spike_len: int = 8, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    vals = [rng.choice([3, 4, 5, 5, 6, 7]) for _ in range(n)]
    for i in range(spike_at, min(n, spike_at + spike_len)):
        vals[i] = 60
    return vals


RULE = """\
apiVersion: incidents.buttercream.io/v1alpha1
kind: DetectionRule
metadata:
  name: login-tickets
spec:
  query: sum(increase(login_tickets_created_total[5m]))
  for: {for_}
  detector:
    type: threshold
    threshold:
      value: 15
"""


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    "text,seconds",
    [("0s", 0), ("0", 0), ("30s", 30), ("10m", 600), ("1h30m", 5400), ("1d", 86400), ("2h", 7200),
     ("1d2h3m4s", 93784), ("1500ms", 1.5), (" 5m ", 300)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "5x", "m5", "1m1h", "1h1h", "-5m", "1.5h", "10 m", None, 5])
def test_parse_duration_rejects_with_clear_message(text):
    with pytest.raises(ValueError) as err:
        parse_duration(text)
    assert "duration" in str(err.value) and ("'" in str(err.value) or "got" in str(err.value))


def test_format_duration_inverts_parse():
    for s in (0, 30, 600, 5400, 86400, 93784):
        assert parse_duration(format_duration(s)) == s


# --------------------------------------------------------------------------- CLI round trips


def test_round_trip_default_detector(tmp_path, capsys):
    vals = synthetic()
    src = tmp_path / "series.csv"
    stamps = write_series(src, vals)
    out = tmp_path / "out" / "alarms.csv"
    assert main(["--series", str(src), "--out", str(out)]) == 0
    rows = read_out(out.read_text())
    assert [r["timestamp"] for r in rows] == stamps
    assert [float(r["value"]) for r in rows] == vals
    alarms = [int(r["alarm"]) for r in rows]
    assert set(alarms) <= {0, 1}
    assert not any(alarms[:500])  # steady part: no alarm
    assert any(alarms[500:520])  # the 12x burst is detected
    # stdout mode gives the same bytes
    assert main(["--series", str(src)]) == 0
    assert capsys.readouterr().out == out.read_text()


def test_rule_file_threshold_and_for(tmp_path):
    vals = [5] * 20 + [20] * 3 + [5] * 5 + [20] * 1 + [5] * 5
    src = tmp_path / "s.csv"
    write_series(src, vals, step_s=300)
    rule0 = tmp_path / "r0.yaml"
    rule0.write_text(RULE.format(for_="0s"))
    rule10 = tmp_path / "r10.yaml"
    rule10.write_text(RULE.format(for_="10m"))
    out0, out10 = tmp_path / "o0.csv", tmp_path / "o10.csv"
    assert main(["--rule", str(rule0), "--series", str(src), "--out", str(out0)]) == 0
    assert main(["--rule", str(rule10), "--series", str(src), "--out", str(out10)]) == 0
    a0 = [int(r["alarm"]) for r in read_out(out0.read_text())]
    a10 = [int(r["alarm"]) for r in read_out(out10.read_text())]
    assert a0 == [1 if v >= 15 else 0 for v in vals]
    # with for: 10m the burst of 3 samples (0, 5, 10 min) fires only on its third sample,
    # and the single-sample burst never fires
    assert [i for i, a in enumerate(a10) if a] == [22]


def test_nab_layout(tmp_path):
    nab = tmp_path / "nab"
    (nab / "data" / "catA").mkdir(parents=True)
    (nab / "data" / "catB").mkdir(parents=True)
    write_series(nab / "data" / "catA" / "x.csv", synthetic(400, 350))
    write_series(nab / "data" / "catB" / "y.csv", synthetic(300, 250))
    out = tmp_path / "out"
    assert main(["--nab", str(nab), "--out", str(out)]) == 0
    assert (out / "catA" / "x.csv").is_file() and (out / "catB" / "y.csv").is_file()
    rows = read_out((out / "catB" / "y.csv").read_text())
    assert len(rows) == 300 and list(rows[0]) == ["timestamp", "value", "alarm"]
    # --category filter
    out2 = tmp_path / "out2"
    assert main(["--nab", str(nab), "--out", str(out2), "--category", "catA"]) == 0
    assert (out2 / "catA" / "x.csv").is_file() and not (out2 / "catB").exists()


def test_details_columns(tmp_path, capsys):
    src = tmp_path / "s.csv"
    write_series(src, synthetic(200, 150))
    assert main(["--series", str(src), "--details"]) == 0
    rows = read_out(capsys.readouterr().out)
    assert list(rows[0]) == ["timestamp", "value", "alarm", "count", "expected", "threshold", "score",
                            "event"]


@pytest.mark.parametrize(
    "manifest,needle",
    [
        ("kind: Incident\napiVersion: incidents.buttercream.io/v1alpha1\n", "no DetectionRule"),
        ("kind: DetectionRule\napiVersion: v1\nspec: {}\n", "expected apiVersion"),
        (RULE.format(for_="soon"), "spec.for"),
        (RULE.replace("value: 15", "value: -3"), "detector.threshold.value must be"),
    ],
)
def test_bad_rule_exits_2_with_message(tmp_path, capsys, manifest, needle):
    src = tmp_path / "s.csv"
    write_series(src, [1, 2, 3])
    rule = tmp_path / "r.yaml"
    rule.write_text(manifest)
    assert main(["--rule", str(rule), "--series", str(src)]) == 2
    assert needle in capsys.readouterr().err


def test_bad_csv_exits_2(tmp_path, capsys):
    src = tmp_path / "s.csv"
    src.write_text("time,count\n2015-01-01 00:00:00,3\n")
    assert main(["--series", str(src)]) == 2
    assert "timestamp,value" in capsys.readouterr().err
    src.write_text("timestamp,value\n2015-01-01 00:00:00,abc\n")
    assert main(["--series", str(src)]) == 2
    assert "not a number" in capsys.readouterr().err


# --------------------------------------------------------------------------- causality

SMALL = {
    "type": "baseline",
    "baseline": {
        "windowPoints": 2,
        "trailingPoints": 12,
        "seasonalDays": 1,
        "seasonalHalfWidthPoints": 2,
        "minReferencePoints": 4,
        "minCount": 3,
    },
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.integers(min_value=0, max_value=40), min_size=2, max_size=80),
    data=st.data(),
    for_s=st.sampled_from([0.0, 3600.0]),
)
def test_property_replay_is_causal(values, data, for_s):
    """A row's alarm never depends on later rows (hourly step, so the 1-day seasonal lag is used)."""
    cut = data.draw(st.integers(min_value=1, max_value=len(values) - 1))
    tail = data.draw(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=30))
    epochs = [1_425_168_000.0 + 3600.0 * i for i in range(max(len(values), cut + len(tail)))]
    det = build_detector(SMALL)
    full = replay(epochs[: len(values)], [float(v) for v in values], det, for_s=for_s)
    changed_vals = [float(v) for v in values[:cut]] + [float(v) for v in tail]
    changed = replay(epochs[: len(changed_vals)], changed_vals, det, for_s=for_s)
    prefix = replay(epochs[:cut], [float(v) for v in values[:cut]], det, for_s=for_s)
    assert [r.alarm for r in full[:cut]] == [r.alarm for r in prefix] == [r.alarm for r in changed[:cut]]
    assert [r.verdict for r in full[:cut]] == [r.verdict for r in prefix]


def test_replay_uses_seasonal_context():
    """With an hourly step, a burst that happens every day at the same hour stops alarming."""
    det = build_detector(
        {"type": "baseline", "baseline": {"windowPoints": 1, "trailingPoints": 12, "seasonalDays": 3,
                                          "seasonalHalfWidthPoints": 1, "minReferencePoints": 6,
                                          "upperQuantile": 1.0, "upperFactor": 1.2, "factor": 1.5}}
    )
    values = []
    for _day in range(4):
        values += [5.0] * 12 + [40.0] + [5.0] * 11
    epochs = [1_425_168_000.0 + 3600.0 * i for i in range(len(values))]
    rows = replay(epochs, values, det)
    burst_rows = [24 * d + 12 for d in range(4)]
    assert rows[burst_rows[0]].alarm  # first day: new
    assert not rows[burst_rows[3]].alarm  # by day 4 the daily burst is part of the seasonal baseline
    no_seasonal = build_detector(
        {"type": "baseline", "baseline": {"windowPoints": 1, "trailingPoints": 12, "seasonalDays": 0,
                                          "minReferencePoints": 6, "upperQuantile": 1.0,
                                          "upperFactor": 1.2, "factor": 1.5}}
    )
    assert replay(epochs, values, no_seasonal)[burst_rows[3]].alarm


# --------------------------------------------------------------------------- out-of-order rows


def test_out_of_order_rows_are_skipped_counted_and_the_rest_replayed(tmp_path, capsys):
    vals = synthetic(400, 350)
    src = tmp_path / "s.csv"
    stamps = write_series(src, vals)
    lines = src.read_text().splitlines()
    # as in NAB's machine_temperature file: the clock steps back (two rows from an hour earlier)
    lines[201:201] = ["2015-03-01 15:00:00,4", "2015-03-01 15:05:00,5"]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o.csv"
    assert main(["--series", str(src), "--out", str(out)]) == 0
    rows = read_out(out.read_text())
    assert [r["timestamp"] for r in rows] == stamps  # the kept rows, in order
    assert any(int(r["alarm"]) for r in rows[350:])
    err = capsys.readouterr().err
    assert "skipped 2 out-of-order rows" in err and "first at line 202" in err


def test_nab_batch_reports_a_bad_file_and_finishes_the_others(tmp_path, capsys):
    nab = tmp_path / "nab"
    for category in ("catA", "catB"):
        (nab / "data" / category).mkdir(parents=True)
    write_series(nab / "data" / "catA" / "good.csv", synthetic(300, 250))
    backwards = nab / "data" / "catA" / "backwards.csv"
    write_series(backwards, synthetic(300, 250))
    text = backwards.read_text().splitlines()
    text.insert(101, "2015-03-01 00:00:00,3")
    backwards.write_text("\n".join(text) + "\n")
    (nab / "data" / "catB" / "broken.csv").write_text("timestamp,value\n2015-03-01 00:00:00,many\n")
    write_series(nab / "data" / "catB" / "later.csv", synthetic(300, 250))
    out = tmp_path / "out"
    assert main(["--nab", str(nab), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "catA/backwards.csv: " in err and "skipped 1 out-of-order row " in err
    assert "catB/broken.csv: not replayed: " in err and "is not a number" in err
    assert "1 of 4 files not replayed" in err
    assert len(read_out((out / "catA" / "backwards.csv").read_text())) == 300
    for name in ("catA/good.csv", "catB/later.csv"):
        assert len(read_out((out / name).read_text())) == 300
    assert not (out / "catB" / "broken.csv").exists()


def test_help_says_what_happens_to_out_of_order_rows(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "timestamp goes backwards are skipped" in " ".join(capsys.readouterr().out.split())
