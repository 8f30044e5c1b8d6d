"""What any text, tag or JSON value from a user must be, whichever edge it arrives through.

One place for the rules, so an import file, a REST body, a CLI option and a UI form refuse
the same things with the same words:

- text: valid Unicode (JSON can spell a lone surrogate, ``"\\ud800"``, that nothing can
  store or send back) and no NUL (PostgreSQL text cannot hold it);
- a tag: text by those rules, not empty or only spaces (kept without its outer spaces), and
  at most :data:`MAX_TAG_CHARS` characters;
- a JSON value: nested at most :data:`MAX_JSON_DEPTH` levels. Reading and quoting it
  back recurse once per level; far deeper than any honest record, a value would exhaust
  the interpreter's stack instead of being refused.

Each check raises :class:`~rlhf.errors.InvalidInput` whose message starts with ``where``
(the line, item or field), as every import error does; :func:`too_deep` only answers, for
callers that gather errors line by line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rlhf.errors import InvalidInput

MAX_TAG_CHARS = 64
MAX_JSON_DEPTH = 64
TOO_DEEP = f"nested too deeply (more than {MAX_JSON_DEPTH} levels of lists and objects)"
NOT_UNICODE = "is not valid Unicode (a lone surrogate)"
HAS_NUL = "contains a NUL character"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, worded to follow its name ("contains a NUL character"), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return NOT_UNICODE
    if "\x00" in text:
        return HAS_NUL
    return None


def check_text(text: str, where: str, name: str = "text") -> str:
    """``text`` unchanged, or :class:`InvalidInput` ("<where>: <name> contains a NUL character")."""
    problem = text_problem(text)
    if problem:
        raise InvalidInput(f"{where}: {name} {problem}")
    return text


def check_tag(tag: Any, where: str) -> str:
    """``tag`` without its outer spaces, or :class:`InvalidInput` naming ``where`` and what is wrong."""
    if not isinstance(tag, str):
        raise InvalidInput(f"{where}: a tag must be a string")
    problem = text_problem(tag)
    if problem:
        shown = "" if problem == NOT_UNICODE else f" {_short(tag)}"  # a lone surrogate cannot be printed
        raise InvalidInput(f"{where}: tag{shown} {problem}")
    tag = tag.strip()
    if not tag:
        raise InvalidInput(f"{where}: a tag is empty (only spaces or nothing)")
    if len(tag) > MAX_TAG_CHARS:
        raise InvalidInput(
            f"{where}: tag {_short(tag)} is {len(tag)} characters long; a tag may have at most {MAX_TAG_CHARS}"
        )
    return tag


def check_tags(tags: list[Any], where: str) -> list[str]:
    """Each of ``tags`` by :func:`check_tag`, in order."""
    return [check_tag(tag, where) for tag in tags]


def _short(text: str) -> str:
    return repr(text) if len(text) <= 24 else repr(text[:20]) + "…"


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether lists and dicts in ``value`` nest more than ``limit`` levels (``[]`` is one level).

    Walks without recursion, so it answers for a value nested any depth."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
