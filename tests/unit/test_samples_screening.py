"""Issue 14, finding 4: what Prometheus really returns (+Inf, -Inf, NaN, series without the group label) is
refused per sample, counted, and never reaches a status write as a non-finite number."""

from __future__ import annotations

import asyncio
import json
import math

from incident_operator.domain.common.status import finite_only
from incident_operator.domain.detection import rules as dom
from incident_operator.services.rendering import RenderExecutor, run_rendering

SPEC = {"query": "sum by (topic) (x)", "groupLabels": ["topic"],
        "detector": {"type": "threshold", "threshold": {"value": 1}}}


def test_non_finite_values_and_missing_group_labels_are_dropped_and_counted_by_reason():
    rule = dom.parse_rule("ns", "r", SPEC)
    screened = dom.screen_samples(rule, [({"topic": "a"}, math.inf), ({"topic": "b"}, -math.inf),
                                         ({"topic": "c"}, math.nan), ({}, 100.0), ({"topic": ""}, 5.0),
                                         ({"topic": "ok"}, 7.0)])
    assert screened.samples == [({"topic": "ok"}, 7.0)]
    assert screened.dropped == {"NonFinite": 3, "MissingGroupLabel": 2}
    assert screened.dropped_count == 5
    assert "3 with a value that is not a finite number" in screened.message()
    assert "2 without the group label(s) topic" in screened.message()


def test_dropped_samples_open_nothing():
    rule = dom.parse_rule("ns", "r", SPEC)
    screened = dom.screen_samples(rule, [({"topic": "a"}, math.inf), ({}, 100.0)])
    plan = dom.plan_evaluation(rule, [], screened.samples, {}, {}, 1_000_000.0)
    assert plan.actions == [] and plan.groups == []


def test_histories_keep_only_finite_points():
    assert dom.finite_points([(1.0, 2.0), (2.0, math.inf), (3.0, math.nan), (4.0, -math.inf)]) == [(1.0, 2.0)]


def test_finite_only_leaves_out_every_non_finite_float_so_the_status_is_valid_json():
    status = {"groups": [{"value": math.inf, "peak": 3.0}, math.nan], "firingCount": 0, "x": None,
              "signal": {"value": -math.inf, "baseline": 1.5}}
    cleaned = finite_only(status)
    assert cleaned == {"groups": [{"peak": 3.0}], "firingCount": 0, "x": None, "signal": {"baseline": 1.5}}
    json.dumps(cleaned, allow_nan=False)


def test_the_render_executor_runs_off_the_event_loop_thread_and_passes_errors_back():
    import threading

    async def main():
        executor = RenderExecutor(workers=1, queue=2)
        try:
            name = await executor.run(lambda: threading.current_thread().name)
            assert name.startswith("render") and name != threading.current_thread().name
            try:
                await run_rendering(executor, dom.parse_rule, "ns", "r",
                                    {**SPEC, "incident": {"title": "{{ 'x' * 10**8 }}"}})
            except dom.InvalidRule as error:
                assert "spec.incident.title: template refused by the sandbox: repetition" in str(error)
            else:
                raise AssertionError("the hostile title must make the rule invalid")
            assert await run_rendering(None, lambda: 42) == 42
        finally:
            executor.shutdown()

    asyncio.run(main())
