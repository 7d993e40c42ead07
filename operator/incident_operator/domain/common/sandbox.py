"""The one Jinja2 sandbox: every template the operator renders (DetectionRule incident titles and
descriptions, customer-communication drafts) goes through :func:`render`.

Template sources come from tenants (rule authors, ConfigMap overrides), so they are untrusted:

- ``ImmutableSandboxedEnvironment``: internals (``''.__class__.__mro__``,
  ``cycler.__init__.__globals__``) and mutation of values raise ``SecurityError``;
- values are only passed as data, never rendered as templates (a title of ``{{ 7*7 }}`` comes
  out literally);
- resource caps, so that a short template cannot build a huge value before the output cap sees it:
  integer arguments of calls and filters at most ``Limits.max_argument``; ``**`` exponents and the
  size of the power; ``*`` repetition of strings and lists; ``%``, ``format`` and ``str.format``
  field widths; ``replace`` / ``indent`` / ``center`` / ``ljust`` / ``expandtabs`` / ... growth
  (the size of the result is estimated from the arguments before the call); ``range`` at most
  Jinja's ``MAX_RANGE`` items;
- the output is generated in chunks and stops at ``Limits.max_output`` characters (an error, or
  the text cut there with ``overflow="truncate"``) -- never rendered in full and cut afterwards;
- a wall-clock limit (``Limits.max_seconds``) enforced by a trace hook on the rendering thread.

:func:`render` takes plain arguments and touches no shared state besides a compile cache, so it
can run in an executor thread as it is.
"""

from __future__ import annotations

import functools
import itertools
import re
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, Literal, Mapping

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["Limits", "TemplateError", "render", "RULE_TEXT", "DOCUMENT"]

Reason = Literal["syntax", "sandbox", "undefined", "timeout", "error"]


class TemplateError(ValueError):
    """A template could not be rendered. ``reason`` says which kind of failure; the message says why."""

    def __init__(self, reason: Reason, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message
        self.lineno = lineno


@dataclass(frozen=True)
class Limits:
    """What one render may cost, and how the template source is read."""

    max_output: int = 10_000  # characters of output
    max_seconds: float = 2.0  # wall clock
    max_argument: int = 100_000  # any integer passed to a call or a filter
    max_exponent: int = 100
    max_int_bits: int = 4096  # size of a power's result
    overflow: Literal["error", "truncate"] = "error"  # output beyond max_output
    strict_undefined: bool = True  # an unknown name is an error (else it renders as "")
    document: bool = False  # Markdown documents: trim_blocks, lstrip_blocks, keep the trailing newline


#: Incident titles, descriptions, service and team of a DetectionRule: short, lenient with unknown
#: names (a missing label renders empty), cut at 10000 characters.
RULE_TEXT = Limits(max_output=10_000, max_seconds=0.5, overflow="truncate", strict_undefined=False)
#: Customer-communication drafts (docs/communications.md): strict names, an error beyond 20000 characters.
DOCUMENT = Limits(max_output=20_000, max_seconds=2.0, document=True)

MAX_JOIN_ITEMS = 100_000  # as Jinja's MAX_RANGE
_BIG_FORMAT = re.compile(r"\d{5,}")  # a field width of 10000 or more
# Methods and filters whose result can be much larger than their input: the result size is estimated
# before the call (`_growth`).
_GROWING_METHODS = frozenset({"replace", "center", "ljust", "rjust", "zfill", "expandtabs", "join", "format",
                              "format_map"})
_GROWING_FILTERS = frozenset({"indent", "center", "replace", "join", "format"})


def _size(value: object) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _growth(name: str, receiver: object, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """An upper bound of the size of ``receiver.name(*args)`` (or of the filter ``name``)."""
    values = list(args) + list(kwargs.values())
    if name == "replace" and len(values) >= 2 and isinstance(receiver, str):
        old, new = values[0], values[1]
        if isinstance(old, str) and isinstance(new, str):
            count = receiver.count(old) if old else len(receiver) + 1
            return len(receiver) + count * max(len(new) - len(old), 0)
    if name in ("format", "format_map"):
        fmt = receiver if isinstance(receiver, str) else ""
        if _BIG_FORMAT.search(fmt):
            return sys.maxsize
    size = _size(receiver) + sum(_size(v) for v in values)
    widths = [i for i in (_integer(v) for v in values) if i is not None]
    if name in ("indent", "expandtabs") and isinstance(receiver, str):
        lines = receiver.count("\n") + receiver.count("\t") + 1
        return size + lines * max(widths + [4])
    if name == "join":
        if isinstance(receiver, str):  # separator.join(items)
            separator, items = receiver, (values[0] if values else ())
        else:  # the filter: items | join(separator)
            items, separator = receiver, next((v for v in values if isinstance(v, str)), "")
        try:
            count = len(items)
        except TypeError:
            return sys.maxsize  # an iterator of unknown length: refuse rather than guess
        content = sum(len(str(i)) for i in items) if count <= 100_000 else count
        return content + count * len(separator)
    return size + max(widths + [0])


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox plus the caps of :class:`Limits`."""

    intercepted_binops = frozenset(["*", "**", "%"])

    def __init__(self, limits: Limits) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined if limits.strict_undefined else jinja2.ChainableUndefined,
            autoescape=False,
            keep_trailing_newline=limits.document,
            trim_blocks=limits.document,
            lstrip_blocks=limits.document,
        )
        self.limits = limits
        self.filters = {name: self._capped_filter(name, function) for name, function in self.filters.items()}

    def _check_arguments(self, values: list[Any]) -> None:
        cap = self.limits.max_argument
        for value in values:
            number = _integer(value)
            if number is not None and abs(number) > cap:
                raise SecurityError(f"numeric argument {number} is larger than the template limit {cap}")

    def _check_growth(self, name: str, receiver: object, args: tuple[Any, ...],
                      kwargs: Mapping[str, Any]) -> None:
        if _growth(name, receiver, args, kwargs) > self.limits.max_output:
            raise SecurityError(f"{name}() would build a value longer than the template output limit "
                                f"({self.limits.max_output} characters)")

    def _capped_filter(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        grows = name in _GROWING_FILTERS

        @functools.wraps(function)  # keeps jinja's pass_context/pass_environment marks
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # jinja passes the context or environment first for marked filters, then the value
            values = [a for a in args if not isinstance(a, (jinja2.runtime.Context, jinja2.nodes.EvalContext,
                                                             jinja2.Environment))]
            self._check_arguments(values[1:] + list(kwargs.values()))
            if name == "join" and values and not hasattr(values[0], "__len__"):
                # a generator (`map(...) | join`): materialise it, boundedly, so its size can be judged
                index = next(i for i, a in enumerate(args) if a is values[0])
                items = list(itertools.islice(values[0], MAX_JOIN_ITEMS + 1))
                if len(items) > MAX_JOIN_ITEMS:
                    raise SecurityError(f"join of more than {MAX_JOIN_ITEMS} items")
                args = args[:index] + (items,) + args[index + 1:]
                values[0] = items
            if grows and values:
                if name == "format" and isinstance(values[0], str) and _BIG_FORMAT.search(values[0]):
                    raise SecurityError("format widths this large are not allowed in templates")
                self._check_growth(name, values[0], tuple(values[1:]), kwargs)
            return function(*args, **kwargs)
        return wrapper

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        # Jinja returns an Undefined that raises only when used, and a lenient Undefined renders as "":
        # refuse the access itself, whatever the undefined policy.
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe.")

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
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
                        len(sized) * count > limits.max_output:
                    raise SecurityError("repetition would exceed the template output limit")
        if operator == "%" and isinstance(left, str) and _BIG_FORMAT.search(left):
            raise SecurityError("format widths this large are not allowed in templates")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any,  # noqa: N805 - jinja's signature
             **kwargs: Any) -> Any:
        __self._check_arguments(list(args) + list(kwargs.values()))
        name = getattr(__obj, "__name__", "")
        # str.format comes wrapped by the sandbox (its own formatter); the string is the wrapped method's
        receiver = getattr(__obj, "__self__", None) or \
            getattr(getattr(__obj, "__wrapped__", None), "__self__", None)
        if name in _GROWING_METHODS and isinstance(receiver, (str, list, tuple)):
            __self._check_growth(name, receiver, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


class _Timeout(Exception):
    pass


@functools.lru_cache(maxsize=8)
def _environment(limits: Limits) -> _Sandbox:
    return _Sandbox(limits)


@functools.lru_cache(maxsize=512)
def _compile(source: str, limits: Limits) -> jinja2.Template:
    # A rule's title is rendered at every evaluation that opens an incident: compile it once.
    return _environment(limits).from_string(source)


def _generate(template: jinja2.Template, context: Mapping[str, Any], limits: Limits) -> str:
    """Renders chunk by chunk under the output cap and a wall-clock limit (a per-thread trace hook)."""
    deadline = time.monotonic() + limits.max_seconds
    previous = sys.gettrace()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise _Timeout()
        return tracer

    chunks: list[str] = []
    size = 0
    sys.settrace(tracer)
    try:
        for chunk in template.generate(**context):
            if size + len(chunk) > limits.max_output:
                if limits.overflow == "truncate":
                    chunks.append(chunk[: limits.max_output - size])
                    break
                raise SecurityError(f"output is longer than {limits.max_output} characters")
            size += len(chunk)
            chunks.append(chunk)
    finally:
        sys.settrace(previous)
    return "".join(chunks)


def render(template_source: str, context: Mapping[str, Any], limits: Limits) -> str:
    """Renders ``template_source`` with ``context`` in the sandbox; :class:`TemplateError` on any failure."""
    try:
        return _generate(_compile(template_source, limits), context, limits)
    except jinja2.TemplateSyntaxError as error:
        message = f"syntax error at line {error.lineno}: {error.message}"
        raise TemplateError("syntax", message, error.lineno) from None
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
        raise TemplateError("error", "template recursion too deep") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError, MemoryError) as error:
        raise TemplateError("error", f"{type(error).__name__}: {error}") from None
