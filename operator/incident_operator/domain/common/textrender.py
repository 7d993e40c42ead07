"""Short text templates (incident titles and descriptions in DetectionRules), rendered sandboxed.

Rule authors are trusted less than the operator: templates run in Jinja2's
ImmutableSandboxedEnvironment, so ``{{ ''.__class__.__mro__ }}``-style escapes raise a
SecurityError instead of reaching Python internals, and the output length is capped.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .text import strip_unsafe

MAX_OUTPUT = 10000


class TemplateError(ValueError):
    pass


@lru_cache(maxsize=4)
def _environment(strict: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined if strict else jinja2.ChainableUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


@lru_cache(maxsize=512)
def _compile(source: str, strict: bool) -> jinja2.Template:
    return _environment(strict).from_string(source)


def render_text(source: str, context: Mapping[str, Any], strict: bool = True) -> str:
    try:
        text = _compile(source, strict).render(**context)
    except SecurityError as error:
        raise TemplateError(f"template refused by the sandbox: {error}") from None
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"template syntax error at line {error.lineno}: {error.message}") from None
    except jinja2.TemplateError as error:
        raise TemplateError(f"template error: {error}") from None
    except (TypeError, ValueError, ArithmeticError) as error:
        raise TemplateError(f"template error: {error}") from None
    # Label values come from the series: no bidi or zero-width characters reach people (text.py).
    return strip_unsafe(text[:MAX_OUTPUT], multiline=True)
