"""The one hardened template engine: every template the operator renders from tenant input
(DetectionRule incident title, description, service and team; customer-communication drafts and
their ConfigMap overrides) goes through :func:`render` (docs/templates.md, "Limits").

Template sources come from tenants, so they are untrusted. The engine is a Jinja2
``ImmutableSandboxedEnvironment`` (internals such as ``''.__class__.__mro__`` and mutation of values
raise ``SecurityError``; values are passed only as data, never rendered as templates) with limits
at two points, so that a short template can cost neither much memory nor much time:

- **compile time** (:func:`compile_template`): the source length, the bracket and block nesting
  (read from the token stream, before the recursive parser sees it), the number of syntax-tree
  nodes, the nesting depth of the tree and of ``for`` loops; ``include``, ``import`` and
  ``extends`` are refused (there is nothing to include); the ``lipsum`` global is removed;
- **render time** (a budget per render, :class:`_Budget`): every call, attribute and item access,
  operator, filter and loop iteration counts as an operation (large inputs count more); the
  wall-clock deadline is checked in that counter, so a runaway loop stops within a few operations
  of its deadline; calls (macros, ``loop()``, ``self.block()``) nest at most ``max_call_depth``
  deep; ``range`` has at most ``max_range`` items;
- **value sizes, before the value is built**: ``*`` and ``+`` on strings, lists and integers,
  ``**``, ``%`` and ``format`` (field widths and field counts), ``~`` concatenation, string methods
  (``replace``, ``join``, ``format``, ``center``, ``ljust``, ``rjust``, ``zfill``, ``expandtabs``, ...)
  and filters (``indent``, ``center``, ``replace``, ``join``, ``format``, ``sum``, ...) have the size of
  their result estimated from their arguments; a result larger than ``max_output`` is refused
  without being allocated. A filter's input may be at most ``max_output`` characters long (as text);
- **output**: every piece of output, including what macros, ``set`` blocks and ``filter`` blocks
  buffer, is charged to ``max_emitted`` characters; the template's own output is generated chunk
  by chunk and stops at ``max_output`` characters (an error, or the text cut there with
  ``overflow="truncate"``) -- never rendered in full and cut afterwards.

Whatever exceeds a limit raises :class:`TemplateError` (reason ``limit`` or ``sandbox``) with a
sentence saying which limit; callers turn it into an ``Invalid`` condition. :func:`render` is
pure and touches no shared state besides a compile cache and a context variable holding the
render's budget, so it runs in an executor thread as it is; the operator runs it in its render
executor (services/rendering.py), off the event loop.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .text import strip_unsafe

__all__ = ["Limits", "TemplateError", "render", "compile_template", "RULE_TEXT", "DOCUMENT"]

Reason = Literal["syntax", "sandbox", "undefined", "timeout", "limit", "error"]


class TemplateError(ValueError):
    """A template could not be rendered. ``reason`` says which kind of failure; the message says why."""

    def __init__(self, reason: Reason, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message
        self.lineno = lineno


class LimitExceeded(SecurityError):
    """A template went past one of the engine's limits (compile time or render time)."""


@dataclass(frozen=True)
class Limits:
    """What one template may be, and what one render of it may cost."""

    max_output: int = 10_000  # characters of output; also the largest value a template may build
    max_seconds: float = 2.0  # wall clock, checked in the operation counter
    max_argument: int = 100_000  # any integer passed to a call or a filter
    max_exponent: int = 100
    max_int_bits: int = 4096  # size of a power's or a product's result
    overflow: Literal["error", "truncate"] = "error"  # output beyond max_output
    strict_undefined: bool = True  # an unknown name is an error (else it renders as "")
    document: bool = False  # Markdown documents: trim_blocks, lstrip_blocks, keep the trailing newline
    # compile time
    max_source: int = 20_000  # characters of template source
    max_nodes: int = 5_000  # syntax-tree nodes
    max_depth: int = 40  # syntax-tree nesting (brackets, blocks, expressions)
    max_loop_nesting: int = 3  # for-loops inside for-loops
    # render time
    max_operations: int = 100_000  # calls, attribute/item accesses, operators, filters, loop iterations
    max_call_depth: int = 20  # macro calls (and loop(), self.block()) inside each other
    max_range: int = 10_000  # items of one range()
    max_emitted: int = 200_000  # characters output in all, including macro and block buffers


#: Incident titles, descriptions, service and team of a DetectionRule: short, lenient with unknown
#: names (a missing label renders empty), cut at 10000 characters.
RULE_TEXT = Limits(max_output=10_000, max_seconds=0.5, overflow="truncate", strict_undefined=False,
                   max_source=4_000, max_nodes=2_000, max_operations=50_000, max_emitted=100_000)
#: Customer-communication drafts (docs/communications.md): strict names, an error beyond 20000 characters.
DOCUMENT = Limits(max_output=20_000, max_seconds=2.0, document=True, max_source=32_768, max_nodes=10_000,
                  max_loop_nesting=4, max_operations=200_000, max_emitted=400_000)

MAX_JOIN_ITEMS = 100_000  # as Jinja's MAX_RANGE
# Methods and filters whose result can be much larger than their input: the result size is estimated
# before the call (`_growth`).
_GROWING_METHODS = frozenset({"replace", "center", "ljust", "rjust", "zfill", "expandtabs", "join", "format",
                              "format_map"})
_GROWING_FILTERS = frozenset({"indent", "center", "replace", "join", "format", "wordwrap", "batch", "slice"})
_DIGITS = re.compile(r"\d+")
_REFUSED_NODES = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
_BLOCK_OPENERS = frozenset({"for", "if", "macro", "call", "filter", "with", "block", "autoescape"})
_BRACKETS_OPEN, _BRACKETS_CLOSE = frozenset("([{"), frozenset(")]}")
_LOOP_FILTER, _CONCAT_FILTER = "sandbox_loop", "sandbox_concat"


# -- sizes -------------------------------------------------------------------------------------------

def _size(value: object) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def text_size(value: object, limit: int, depth: int = 0) -> int:
    """An upper bound of ``len(str(value))``, computed without building the text; stops counting once
    past ``limit`` (the answer is then only known to be larger than ``limit``)."""
    if isinstance(value, str):
        return len(value)
    if value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    if isinstance(value, float):
        return 24
    if isinstance(value, jinja2.Undefined):
        return 0
    if depth > 20:
        return limit + 1  # a value nested this deep (or referring to itself) is not printed
    items: Iterable[Any]
    if isinstance(value, Mapping):
        items = itertools.chain.from_iterable(value.items())
    elif isinstance(value, (list, tuple, set, frozenset, range)):
        items = value
    elif isinstance(value, Namespace):
        items = itertools.chain.from_iterable(getattr(value, "_Namespace__attrs", {}).items())
    else:
        return 64  # Jinja's helpers (macros, cyclers, loop contexts) print as a short repr
    total = 2
    for item in items:
        total += text_size(item, limit - total, depth + 1) + 2
        if total > limit:
            return total
    return total


def _format_growth(fmt: str, values: list[Any], limit: int, fields: int) -> int:
    """An upper bound of the size of a ``%`` or ``format`` result: the format string, every number in
    it taken as a field width, and each field as large as the largest argument (text or width)."""
    widths = sum(int(d) if len(d) < 10 else sys.maxsize // 4 for d in _DIGITS.findall(fmt))
    largest = max([text_size(v, limit) for v in values] + [abs(i) for i in map(_integer, values) if i] + [0])
    return len(fmt) + widths + max(fields, 1) * largest


def _growth(name: str, receiver: object, args: tuple[Any, ...], kwargs: Mapping[str, Any], limit: int) -> int:
    """An upper bound of the size of ``receiver.name(*args)`` (or of the filter ``name``)."""
    values = list(args) + list(kwargs.values())
    if name == "replace" and len(values) >= 2 and isinstance(receiver, str):
        old, new = values[0], values[1]
        if isinstance(old, str) and isinstance(new, str):
            count = receiver.count(old) if old else len(receiver) + 1
            return len(receiver) + count * max(len(new) - len(old), 0)
    if name in ("format", "format_map"):
        fmt = receiver if isinstance(receiver, str) else ""
        flat: list[Any] = []
        for value in values:
            flat.extend(value.values() if isinstance(value, Mapping) else
                        value if isinstance(value, (list, tuple)) else [value])
        return _format_growth(fmt, flat, limit, fmt.count("{") + fmt.count("%"))
    size = text_size(receiver, limit) + sum(text_size(v, limit) for v in values)
    widths = [i for i in (_integer(v) for v in values) if i is not None]
    if name in ("indent", "expandtabs") and isinstance(receiver, str):
        lines = receiver.count("\n") + receiver.count("\t") + 1
        return size + lines * max(widths + [4])
    if name == "wordwrap":
        return 2 * size + max(widths + [0])
    if name in ("batch", "slice"):
        return size * 2 + max(widths + [0])
    if name == "join":
        if isinstance(receiver, str):  # separator.join(items)
            separator, items = receiver, (values[0] if values else ())
        else:  # the filter: items | join(separator)
            items, separator = receiver, next((v for v in values if isinstance(v, str)), "")
        try:
            count = len(items)
        except TypeError:
            return sys.maxsize  # an iterator of unknown length: refuse rather than guess
        content = text_size(list(items) if count <= MAX_JOIN_ITEMS else (), limit)
        return content + count * len(separator) if count <= MAX_JOIN_ITEMS else sys.maxsize
    return size + max(widths + [0])


# -- the render budget --------------------------------------------------------------------------------

class _Budget:
    """What one render has spent: operations (the deadline is checked every few), call depth, output."""

    __slots__ = ("limits", "operations", "deadline", "depth", "emitted", "next_clock_check")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.operations = 0
        self.deadline = time.monotonic() + limits.max_seconds
        self.depth = 0
        self.emitted = 0
        self.next_clock_check = 0

    def spend(self, operations: int = 1) -> None:
        self.operations += operations
        if self.operations > self.limits.max_operations:
            raise LimitExceeded(f"the template used more than {self.limits.max_operations} operations "
                                "(calls, loop iterations, filters, attribute accesses)")
        if self.operations >= self.next_clock_check:
            self.next_clock_check = self.operations + 64
            if time.monotonic() > self.deadline:
                raise _Timeout()

    def emit(self, characters: int) -> None:
        self.emitted += characters
        if self.emitted > self.limits.max_emitted:
            raise LimitExceeded(f"the template output more than {self.limits.max_emitted} characters in all "
                                "(including macro and block output)")


class _Timeout(Exception):
    pass


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # outside render(): constant folding at compile time is not allowed to run these
        raise LimitExceeded("template code ran outside a render")
    return budget


# -- the environment ------------------------------------------------------------------------------------

class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox plus the limits of :class:`Limits`."""

    intercepted_binops = frozenset(["*", "**", "%", "+", "//", "/", "-"])
    intercepted_unops = frozenset(["-", "+"])

    def __init__(self, limits: Limits) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined if limits.strict_undefined else jinja2.ChainableUndefined,
            autoescape=False,
            keep_trailing_newline=limits.document,
            trim_blocks=limits.document,
            lstrip_blocks=limits.document,
            finalize=self._finalize,
        )
        self.limits = limits
        self.globals.pop("lipsum", None)  # lipsum(n) writes n paragraphs in one call
        self.globals["range"] = self._range
        self.filters = {name: self._capped_filter(name, function) for name, function in self.filters.items()}
        self.filters[_LOOP_FILTER] = self._loop
        self.filters[_CONCAT_FILTER] = self._concat

    # The output of every ``{{ }}`` and every piece of template text (compile_template turns the text
    # into constants, so that it passes here too), in macros and blocks as at the top level.
    @jinja2.pass_context
    def _finalize(self, context: jinja2.runtime.Context, value: Any) -> Any:
        budget = _budget()
        size = text_size(value, self.limits.max_output)
        if size > self.limits.max_output:
            raise LimitExceeded(f"a value of more than {self.limits.max_output} characters cannot be output")
        budget.emit(size)
        return value

    def _range(self, *args: Any) -> range:
        _budget().spend()
        self._check_arguments(list(args))
        values = range(*args)
        if len(values) > self.limits.max_range:
            raise LimitExceeded(f"range() of more than {self.limits.max_range} items")
        return values

    @jinja2.pass_context
    def _loop(self, context: jinja2.runtime.Context, iterable: Any) -> Iterator[Any]:
        """Every for-loop iterates through here: each iteration is an operation."""
        budget = _budget()
        budget.spend()
        for item in iterable:
            budget.spend()
            yield item

    @jinja2.pass_context
    def _concat(self, context: jinja2.runtime.Context, parts: list[Any]) -> str:
        """``a ~ b ~ c``: the size of the result is known before it is built."""
        budget = _budget()
        cap = self.limits.max_output
        total = 0
        for part in parts:
            total += text_size(part, cap)
            if total > cap:
                raise LimitExceeded(f"~ would build a value longer than the template limit ({cap} "
                                    "characters)")
        budget.spend(1 + total // 1000)
        return "".join(map(str, parts))

    def _check_arguments(self, values: list[Any]) -> None:
        cap = self.limits.max_argument
        for value in values:
            number = _integer(value)
            if number is not None and abs(number) > cap:
                raise SecurityError(f"numeric argument {number} is larger than the template limit {cap}")

    def _check_growth(self, name: str, receiver: object, args: tuple[Any, ...],
                      kwargs: Mapping[str, Any]) -> None:
        cap = self.limits.max_output
        if _growth(name, receiver, args, kwargs, cap) > cap:
            raise SecurityError(f"{name}() would build a value longer than the template output limit "
                                f"({cap} characters)")

    def _charge_input(self, budget: _Budget, value: Any, what: str) -> None:
        cap = self.limits.max_output
        size = text_size(value, cap)
        if size > cap:
            raise LimitExceeded(f"{what}: its input is longer than the template limit ({cap} characters)")
        budget.spend(1 + size // 1000)

    def _capped_filter(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        grows = name in _GROWING_FILTERS

        @functools.wraps(function)  # keeps jinja's pass_context/pass_environment marks
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            budget = _budget()
            # jinja passes the context or environment first for marked filters, then the value
            values = [a for a in args if not isinstance(a, (jinja2.runtime.Context, jinja2.nodes.EvalContext,
                                                             jinja2.Environment))]
            self._check_arguments(values[1:] + list(kwargs.values()))
            if values and not isinstance(values[0], (str, Mapping, list, tuple, set, frozenset)) and \
                    hasattr(values[0], "__iter__") and not isinstance(values[0], jinja2.Undefined):
                # a generator or range (`map(...) | join`): materialise it, boundedly, to judge its size
                index = next(i for i, a in enumerate(args) if a is values[0])
                items = list(itertools.islice(values[0], MAX_JOIN_ITEMS + 1))
                if len(items) > MAX_JOIN_ITEMS:
                    raise LimitExceeded(f"{name} of more than {MAX_JOIN_ITEMS} items")
                args = args[:index] + (items,) + args[index + 1:]
                values[0] = items
            if values:
                self._charge_input(budget, values[0], f"the filter {name}")
            else:
                budget.spend()
            if grows and values:
                self._check_growth(name, values[0], tuple(values[1:]), kwargs)
            if name == "sum" and values:
                items = list(values[0]) if isinstance(values[0], (list, tuple)) else []
                if any(not isinstance(i, (int, float)) for i in items):
                    total = sum(text_size(i, self.limits.max_output) for i in items)
                    if total > self.limits.max_output:
                        raise LimitExceeded("sum() would build a value longer than the template limit")
            return function(*args, **kwargs)
        return wrapper

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        # Jinja returns an Undefined that raises only when used, and a lenient Undefined renders as "":
        # refuse the access itself, whatever the undefined policy.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe.")

    def getattr(self, obj: Any, attribute: str) -> Any:
        _budget().spend()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _budget().spend()
        return super().getitem(obj, argument)

    def call_unop(self, context: jinja2.runtime.Context, operator: str, arg: Any) -> Any:
        _budget().spend()
        return super().call_unop(context, operator, arg)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.spend()
        limits = self.limits
        if operator == "**" and isinstance(right, (int, float)):
            if abs(right) > limits.max_exponent:
                raise SecurityError(
                    f"exponent {right} is larger than the template limit {limits.max_exponent}")
            if isinstance(left, int) and abs(left).bit_length() * abs(right) > limits.max_int_bits:
                raise SecurityError("the power would be a larger number than templates may compute")
        if operator == "*":
            for sized, count in ((left, right), (right, left)):
                if isinstance(sized, (str, list, tuple)) and isinstance(count, int) and \
                        text_size(sized, limits.max_output) * max(count, 0) > limits.max_output:
                    raise SecurityError("repetition would exceed the template output limit "
                                        f"({limits.max_output} characters)")
            if isinstance(left, int) and isinstance(right, int) and \
                    abs(left).bit_length() + abs(right).bit_length() > limits.max_int_bits:
                raise SecurityError("the product would be a larger number than templates may compute")
        if operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            if text_size(left, limits.max_output) + text_size(right, limits.max_output) > limits.max_output:
                raise SecurityError("+ would build a value longer than the template output limit "
                                    f"({limits.max_output} characters)")
        if operator == "%" and isinstance(left, str):
            arguments = list(right.values()) if isinstance(right, Mapping) else \
                list(right) if isinstance(right, tuple) else [right]
            if _format_growth(left, arguments, limits.max_output, left.count("%")) > limits.max_output:
                raise SecurityError("% formatting would build a value longer than the template output limit "
                                    f"({limits.max_output} characters); format widths this large are refused")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any,  # noqa: N805 - jinja's signature
             **kwargs: Any) -> Any:
        budget = _budget()
        budget.spend()
        __self._check_arguments(list(args) + list(kwargs.values()))
        name = getattr(__obj, "__name__", "")
        # str.format comes wrapped by the sandbox (its own formatter); the string is the wrapped method's
        receiver = getattr(__obj, "__self__", None) or \
            getattr(getattr(__obj, "__wrapped__", None), "__self__", None)
        if name in _GROWING_METHODS and isinstance(receiver, (str, list, tuple)):
            __self._check_growth(name, receiver, args, kwargs)
        if budget.depth >= __self.limits.max_call_depth:
            raise LimitExceeded(f"calls nested more than {__self.limits.max_call_depth} deep "
                                "(a macro calling itself?)")
        budget.depth += 1
        try:
            return super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1


@functools.lru_cache(maxsize=8)
def _environment(limits: Limits) -> _Sandbox:
    return _Sandbox(limits)


# -- compile time -----------------------------------------------------------------------------------------

def _check_tokens(environment: _Sandbox, source: str) -> None:
    """Bracket and block nesting from the (iterative) lexer, before the recursive parser runs."""
    limits = environment.limits
    brackets = blocks = 0
    after_block_begin = False
    for lineno, kind, value in environment.lex(source):
        if kind == "operator" and value in _BRACKETS_OPEN:
            brackets += 1
        elif kind == "operator" and value in _BRACKETS_CLOSE:
            brackets -= 1
        elif kind == "block_begin":
            after_block_begin = True
            continue
        elif after_block_begin and kind == "name":
            if value in _BLOCK_OPENERS:
                blocks += 1
            elif value.startswith("end"):
                blocks -= 1
        after_block_begin = False
        if brackets > limits.max_depth or blocks > limits.max_depth:
            raise LimitExceeded(f"the template nests more than {limits.max_depth} levels deep "
                                f"(line {lineno})")


def _check_tree(tree: nodes.Template, limits: Limits) -> None:
    """Node count, tree depth and loop nesting, walked without recursion; refused node kinds."""
    count = 0
    stack: list[tuple[nodes.Node, int, int]] = [(tree, 0, 0)]
    while stack:
        node, depth, loops = stack.pop()
        count += 1
        if count > limits.max_nodes:
            raise LimitExceeded(f"the template has more than {limits.max_nodes} syntax nodes")
        if depth > limits.max_depth * 3:
            raise LimitExceeded(f"the template's expressions nest more than {limits.max_depth * 3} "
                                "levels deep")
        if isinstance(node, _REFUSED_NODES):
            raise SecurityError(f"{type(node).__name__.lower()} is not available in templates "
                                f"(line {node.lineno})")
        if isinstance(node, nodes.For):
            loops += 1
            if loops > limits.max_loop_nesting:
                raise LimitExceeded(f"for-loops nest more than {limits.max_loop_nesting} deep "
                                    f"(line {node.lineno})")
        stack.extend((child, depth + 1, loops) for child in node.iter_child_nodes())


def _guard(tree: nodes.Template) -> None:
    """Routes the tree through the budget: for-loops iterate through the loop guard, ``~`` goes through
    the sized concatenation, template text becomes constants (so that it is charged as output)."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
    for output in tree.find_all(nodes.Output):
        output.nodes = [nodes.Const(child.data, lineno=child.lineno) if isinstance(child, nodes.TemplateData)
                        else child for child in output.nodes]
    # Concat nodes are replaced where they are referenced (any field of any node may hold one).
    # Children before their parents, so that a nested ``~`` is replaced inside the one around it.
    for node in reversed(list(tree.find_all(nodes.Node))):
        for field_name in node.fields:
            value = getattr(node, field_name, None)
            if isinstance(value, nodes.Concat):
                setattr(node, field_name, _sized_concat(value))
            elif isinstance(value, list):
                setattr(node, field_name,
                        [_sized_concat(v) if isinstance(v, nodes.Concat) else v for v in value])


def _sized_concat(node: nodes.Concat) -> nodes.Filter:
    return nodes.Filter(nodes.List(list(node.nodes), lineno=node.lineno), _CONCAT_FILTER, [], [], None, None,
                        lineno=node.lineno)


@functools.lru_cache(maxsize=512)
def compile_template(source: str, limits: Limits) -> jinja2.Template:
    """The template, checked against the compile-time limits; :class:`LimitExceeded` / ``SecurityError`` /
    ``TemplateSyntaxError`` otherwise. Cached: a rule's title is rendered at every evaluation that opens
    an incident."""
    if len(source) > limits.max_source:
        raise LimitExceeded(f"the template is longer than {limits.max_source} characters")
    environment = _environment(limits)
    _check_tokens(environment, source)
    tree = environment.parse(source)
    _check_tree(tree, limits)
    _guard(tree)
    return environment.from_string(tree)


def _generate(template: jinja2.Template, context: Mapping[str, Any], limits: Limits) -> str:
    """Renders chunk by chunk under the output cap, with a fresh budget (operations, deadline, output)."""
    token = _BUDGET.set(_Budget(limits))
    chunks: list[str] = []
    size = 0
    try:
        for chunk in template.generate(**context):
            if size + len(chunk) > limits.max_output:
                if limits.overflow == "truncate":
                    chunks.append(chunk[: limits.max_output - size])
                    break
                raise LimitExceeded(f"output is longer than {limits.max_output} characters")
            size += len(chunk)
            chunks.append(chunk)
    finally:
        _BUDGET.reset(token)
    return "".join(chunks)


def render(template_source: str, context: Mapping[str, Any], limits: Limits) -> str:
    """Renders ``template_source`` with ``context`` in the sandbox; :class:`TemplateError` on any failure."""
    try:
        # Context values (series labels, tenant text) reach people: no bidi or zero-width characters.
        text = _generate(compile_template(template_source, limits), context, limits)
        return strip_unsafe(text, multiline=True)
    except jinja2.TemplateSyntaxError as error:
        message = f"syntax error at line {error.lineno}: {error.message}"
        raise TemplateError("syntax", message, error.lineno) from None
    except LimitExceeded as error:
        raise TemplateError("limit", f"over the template limits: {error}") from None
    except SecurityError as error:
        raise TemplateError("sandbox", str(error)) from None
    except jinja2.UndefinedError as error:
        raise TemplateError("undefined", str(error.message)) from None
    except _Timeout:
        message = f"rendering took longer than {limits.max_seconds:g}s and was stopped"
        raise TemplateError("timeout", message) from None
    except jinja2.TemplateError as error:
        raise TemplateError("error", f"template error: {error}") from None
    except RecursionError:
        raise TemplateError("limit", "over the template limits: the template nests too deeply") from None
    except MemoryError:
        raise TemplateError("limit", "over the template limits: out of memory") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as error:
        raise TemplateError("error", f"{type(error).__name__}: {error}") from None

