"""What a DetectionRule's PromQL says about itself: range windows, functions, output labels.

Used by the semantic checks of ``incidentctl lint``. Parses with the same parser the operator
uses (``promql_parser``); :func:`analyse` returns None when the query does not parse (the PromQL
check reports that).
"""

from __future__ import annotations

from dataclasses import dataclass, field

COUNT_FUNCTIONS = frozenset({"increase", "count_over_time", "sum_over_time", "changes", "resets"})
RATE_FUNCTIONS = frozenset({"rate", "irate", "deriv"})
# Functions that keep the labels of their (first) vector argument.
_LABEL_KEEPING = frozenset({
    "abs", "ceil", "floor", "round", "exp", "ln", "log2", "log10", "sqrt", "clamp", "clamp_min", "clamp_max",
    "increase", "rate", "irate", "delta", "idelta", "deriv", "changes", "resets", "predict_linear",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time",
    "quantile_over_time", "stddev_over_time", "stdvar_over_time", "present_over_time", "sort", "sort_desc",
    "timestamp", "holt_winters", "double_exponential_smoothing",
})
_KEEP_ALL_AGGREGATIONS = frozenset({"topk", "bottomk", "limitk", "limit_ratio"})


@dataclass
class QueryFacts:
    windows: list[tuple[float, str]] = field(default_factory=list)  # (seconds, "[10m]" text)
    functions: set[str] = field(default_factory=set)
    bare_counters: list[str] = field(default_factory=list)  # *_total selectors read without a range
    output_labels: frozenset[str] | None = None  # None: unknown / every label of the input series
    aggregation: str | None = None  # "sum by (topic)" for messages
    arithmetic: bool = False  # scaled or combined (a * 600, a / b...): its unit is not known

    @property
    def counts(self) -> bool:
        """The query counts events in a window (increase, count_over_time...), not a per-second rate."""
        return bool(self.functions & COUNT_FUNCTIONS) and not self.functions & RATE_FUNCTIONS and not self.arithmetic

    @property
    def per_second(self) -> bool:
        return bool(self.functions & RATE_FUNCTIONS) and not self.functions & COUNT_FUNCTIONS and not self.arithmetic


def _seconds(delta) -> float:
    return delta.total_seconds() if hasattr(delta, "total_seconds") else float(delta)


def _text(seconds: float) -> str:
    from ..domain.common.durations import format_duration

    return "[" + format_duration(seconds) + "]"


def analyse(query: str) -> QueryFacts | None:
    import promql_parser as pp

    try:
        root = pp.parse(query)
    except Exception:  # noqa: BLE001 - reported by check_promql
        return None
    facts = QueryFacts()

    def visit(node, in_range: bool) -> None:
        if isinstance(node, pp.MatrixSelector):
            seconds = _seconds(node.range)
            facts.windows.append((seconds, _text(seconds)))
            visit(node.vector_selector, True)
        elif isinstance(node, pp.SubqueryExpr):
            seconds = _seconds(node.range)
            facts.windows.append((seconds, _text(seconds)))
            visit(node.expr, True)
        elif isinstance(node, pp.VectorSelector):
            name = node.name or ""
            if not in_range and name.endswith("_total"):
                facts.bare_counters.append(name)
        elif isinstance(node, pp.Call):
            facts.functions.add(node.func.name)
            for arg in node.args:
                visit(arg, in_range)
        elif isinstance(node, pp.AggregateExpr):
            visit(node.expr, in_range)
            if node.param is not None:
                visit(node.param, in_range)
        elif isinstance(node, pp.BinaryExpr):
            if str(node.op) in ("+", "-", "*", "/", "%", "^", "atan2"):
                facts.arithmetic = True
            visit(node.lhs, in_range)
            visit(node.rhs, in_range)
        elif isinstance(node, (pp.ParenExpr, pp.UnaryExpr)):
            visit(node.expr, in_range)

    visit(root, False)
    facts.output_labels, facts.aggregation = _labels(root)
    return facts


def _labels(node) -> tuple[frozenset[str] | None, str | None]:
    """The labels every output series has (None: not known, e.g. all input labels)."""
    import promql_parser as pp

    if isinstance(node, (pp.ParenExpr, pp.UnaryExpr)):
        return _labels(node.expr)
    if isinstance(node, pp.AggregateExpr):
        op = str(node.op)
        if op in _KEEP_ALL_AGGREGATIONS:
            return _labels(node.expr)
        modifier = node.modifier
        if modifier is None:
            return frozenset(), op + "(...)"
        labels = list(modifier.labels or [])
        if "Without" in str(modifier.type):
            return None, None
        if op == "count_values" and node.param is not None:
            return None, None
        return frozenset(labels), f"{op} by ({', '.join(labels)})"
    if isinstance(node, pp.BinaryExpr):
        left, left_agg = _labels(node.lhs)
        right, right_agg = _labels(node.rhs)
        if isinstance(node.rhs, pp.NumberLiteral):
            return left, left_agg
        if isinstance(node.lhs, pp.NumberLiteral):
            return right, right_agg
        return (left, left_agg) if left is not None and left == right else (None, None)
    if isinstance(node, pp.Call):
        name = node.func.name
        if name in ("vector", "time", "scalar", "pi"):
            return frozenset(), None
        if name in _LABEL_KEEPING:
            for arg in node.args:
                if not isinstance(arg, (pp.NumberLiteral, pp.StringLiteral)):
                    return _labels(arg)
        return None, None
    if isinstance(node, pp.SubqueryExpr):
        return _labels(node.expr)
    if isinstance(node, pp.MatrixSelector):
        return None, None
    return None, None
