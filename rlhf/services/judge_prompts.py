"""An AI judge's prompt: a Jinja2 template rendered in a sandbox, and the verdict read from its output.

The template sees ``guidelines`` (the raters' guidelines, or ""), ``messages`` (the
conversation before the answers), ``prompt`` (its last user turn), ``a`` and ``b`` (the two
answers in the order this call shows them). The judge ends its output with ``[[A]]``,
``[[B]]`` or ``[[C]]`` (a tie), as in MT-Bench's pairwise prompt; the last such tag is its
verdict, and an output with none has no verdict: nothing is guessed.

Templates come from users, so they render in Jinja2's sandbox: no attribute of Python's
internals, no huge ranges or repeated strings.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment

from rlhf.errors import InvalidInput

VARIABLES = ("guidelines", "messages", "prompt", "a", "b")
VERDICT_TAGS = ("[[A]]", "[[B]]", "[[C]]")
_TAG = re.compile(r"\[\[([ABC])\]\]")
_SHOWN = {"A": "a", "B": "b", "C": "tie"}
# A rendered prompt past this is a template mistake, not a judge prompt.
MAX_RENDERED_CHARS = 1_000_000

DEFAULT_TEMPLATE = """\
[System]
Please act as an impartial judge and evaluate the quality of the responses provided by two AI \
assistants to the user's last message in the conversation below. Choose the assistant that \
follows the user's instructions and answers the user's question better. Consider helpfulness, \
relevance, accuracy, depth and level of detail. Avoid any position bias: the order in which the \
responses are presented must not influence your decision. Do not let the length of the responses \
or the names of the assistants influence your evaluation. Be as objective as possible.
{% if guidelines %}
Judge by these guidelines, which human raters follow too:
[The Start of the Guidelines]
{{ guidelines }}
[The End of the Guidelines]
{% endif %}
Begin your evaluation by comparing the two responses and give a short explanation. After \
your explanation, output your final verdict by strictly following this format: "[[A]]" if \
assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.
{% if messages | length > 1 %}
[The Start of the Conversation]
{% for m in messages %}
### {{ m.role }}:
{{ m.content }}
{% endfor %}
[The End of the Conversation]
{% else %}
[User Question]
{{ prompt }}
{% endif %}
[The Start of Assistant A's Answer]
{{ a }}
[The End of Assistant A's Answer]

[The Start of Assistant B's Answer]
{{ b }}
[The End of Assistant B's Answer]
"""


class _Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox, also bounding ``*`` and ``**`` (``{{ 'x' * 10**10 }}`` would exhaust memory)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise jinja2.sandbox.SecurityError("exponent too large")
        if operator == "*":
            sized = [len(v) for v in (left, right) if isinstance(v, (str, list, tuple))]
            count = [v for v in (left, right) if isinstance(v, int)]
            if sized and count and sized[0] * max(count[0], 0) > MAX_RENDERED_CHARS:
                raise jinja2.sandbox.SecurityError("repeated sequence too long")
        return super().call_binop(context, operator, left, right)


def _env() -> SandboxedEnvironment:
    # No autoescape: the prompt is plain text, and an answer must reach the judge as written.
    return _Sandbox(autoescape=False, keep_trailing_newline=True)


def check_template(text: str) -> str:
    """The template, if it parses, uses ``a`` and ``b``, asks for a tagged verdict and names no unknown variable."""
    env = _env()
    try:
        ast = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidInput(f"template line {exc.lineno}: {exc.message}", param="template") from exc
    used = jinja2.meta.find_undeclared_variables(ast)
    missing = [v for v in ("a", "b") if v not in used]
    if missing:
        raise InvalidInput(
            f"the template never shows the answer{'s' if len(missing) > 1 else ''} {' and '.join(missing)}: "
            "it must use both {{ a }} and {{ b }}",
            param="template",
        )
    unknown = sorted(used - set(VARIABLES) - set(env.globals))
    if unknown:
        raise InvalidInput(
            f"the template uses unknown variables: {', '.join(unknown)}", param="template", allowed=VARIABLES
        )
    absent = [t for t in VERDICT_TAGS if t not in text]
    if absent:
        raise InvalidInput(
            f"the template must ask for the verdict as [[A]], [[B]] or [[C]] (a tie); it lacks {', '.join(absent)}",
            param="template",
        )
    # A trial render: what only fails when rendered (the sandbox's refusals) is refused now, not in a job.
    render(
        text,
        guidelines="Prefer the correct answer.",
        messages=[{"role": "user", "content": "What is 2 + 2?"}],
        a="4",
        b="5",
    )
    return text


def last_user_turn(messages: list[dict]) -> str:
    return next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")


def render(template: str, *, guidelines: str, messages: list[dict], a: str, b: str) -> list[dict]:
    """The chat messages that ask the judge: one user turn holding the rendered template.

    The answers are values, never template text: an answer holding ``{{`` or ``[[A]]`` is shown as is.
    """
    env = _env()
    try:
        rendered = env.from_string(template).render(
            guidelines=guidelines or "",
            messages=[{"role": m.get("role", ""), "content": m.get("content", "")} for m in messages],
            prompt=last_user_turn(messages),
            a=a,
            b=b,
        )
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidInput(f"template line {exc.lineno}: {exc.message}", param="template") from exc
    except jinja2.sandbox.SecurityError as exc:
        raise InvalidInput(f"the template does what templates may not: {exc}", param="template") from exc
    except Exception as exc:  # any error of the template's own making is the template's
        raise InvalidInput(
            f"the template could not be rendered: {type(exc).__name__}: {exc}", param="template"
        ) from exc
    if len(rendered) > MAX_RENDERED_CHARS:
        raise InvalidInput(f"the template renders past {MAX_RENDERED_CHARS} characters", param="template")
    return [{"role": "user", "content": rendered}]


def parse_verdict(text: str) -> str | None:
    """The last ``[[A]]``/``[[B]]``/``[[C]]`` of the output as ``a``/``b``/``tie`` (the order shown); None if none."""
    found = _TAG.findall(text or "")
    return _SHOWN[found[-1]] if found else None


def stored_terms(shown: str | None, swapped: bool) -> str | None:
    """A verdict on the order shown, in terms of the stored response_a / response_b."""
    if shown is None or not swapped:
        return shown
    return {"a": "b", "b": "a"}.get(shown, shown)
