"""Gold comparisons: pairs with a known answer, mixed into raters' queues to measure them.

An engineer marks an existing comparison as gold (its answer in terms of the stored
``a``/``b``), or imports gold pairs from JSONL. Gold pairs are handed out at
``RLHF_GOLD_RATE``, look like any other pair, are never closed, and their votes score
the rater (:mod:`rlhf.services.quality`) instead of training the model.

Import format, one object per line: ``prompt`` (a string) or ``messages`` (a list), and
either ``a``, ``b`` and ``answer`` (``a``, ``b``, ``tie`` or ``both_bad``) or TRL's
``chosen`` and ``rejected`` (the answer is then the chosen one). Strings or one assistant
message each. The whole file is checked first; one bad line imports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from rlhf.errors import InvalidInput
from rlhf.input_rules import check_text
from rlhf.models import Choice, Comparison, ComparisonStatus, Response, stored_id
from rlhf.services.comparisons import get_comparison, open_comparison
from rlhf.services.prompts import MAX_PROMPT_CHARS, BadLines, PromptRecord, import_records, jsonl_values, parse_record

GOLD_TAG = "gold"


@dataclass
class GoldRecord:
    prompt: PromptRecord
    a: str
    b: str
    answer: Choice


def mark_gold(*, session: Session, comparison_id: int, answer: str | Choice | None) -> Comparison:
    """Make a comparison gold with ``answer`` (stored order), or a regular one again with None.

    A gold pair is open to every rater; one made regular again closes if its votes
    already meet its target.
    """
    comp = get_comparison(session=session, comparison_id=comparison_id)
    if answer is None:
        comp.is_gold, comp.gold_choice = False, None
        if comp.strategy == "gold":
            comp.strategy = "random"
        if comp.vote_count >= comp.target_votes:
            comp.status = ComparisonStatus.closed
    else:
        comp.is_gold, comp.gold_choice = True, _answer(answer, f"comparison {comparison_id}")
        comp.status = ComparisonStatus.open
    session.add(comp)
    session.flush()
    return comp


def _answer(value: Any, where: str) -> Choice:
    try:
        return Choice(value)
    except ValueError:
        raise InvalidInput(f"{where}: answer {value!r} names neither response; use a, b, tie or both_bad") from None


def _text(value: Any, field: str, where: str) -> str:
    """A response given as a string or as one assistant message ({"role", "content"} or a list of one)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict):
        if value.get("role", "assistant") != "assistant":
            raise InvalidInput(f"{where}: '{field}' must be an assistant message")
        value = value.get("content")
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where}: '{field}' must be a non-empty string")
    check_text(value, where, f"'{field}'")
    if len(value) > MAX_PROMPT_CHARS:
        raise InvalidInput(f"{where}: '{field}' longer than {MAX_PROMPT_CHARS} characters")
    return value


def _gold_line(raw: Any, where: str) -> GoldRecord:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: expected an object")
    prompt = parse_record({k: raw[k] for k in ("prompt", "messages") if k in raw}, where)
    if "chosen" in raw or "rejected" in raw:
        a, b, answer = (
            _text(raw.get("chosen"), "chosen", where),
            _text(raw.get("rejected"), "rejected", where),
            Choice.a,
        )
    else:
        if "answer" not in raw:
            raise InvalidInput(f"{where}: missing 'answer' (a, b, tie or both_bad), or give chosen/rejected")
        a, b, answer = _text(raw.get("a"), "a", where), _text(raw.get("b"), "b", where), _answer(raw["answer"], where)
    if a.strip() == b.strip():
        raise InvalidInput(f"{where}: the two responses are the same")
    return GoldRecord(prompt=prompt, a=a, b=b, answer=answer)


def parse_gold(data: bytes, name: str) -> list[GoldRecord]:
    bad = BadLines(name)
    records = [bad.check(_gold_line, raw, where) for where, raw in jsonl_values(data, name, bad)]
    bad.raise_any()
    if not records:
        raise InvalidInput(f"{name}: no gold comparisons found")
    return records


def import_gold(*, session: Session, path: str | Path, data: bytes | None = None) -> list[int]:
    """Create the prompts, responses and gold comparisons of a file; returns the comparison ids."""
    path = Path(path)
    records = parse_gold(path.read_bytes() if data is None else data, path.name)
    ids: list[int] = []
    for rec in records:
        rec.prompt.tags = sorted(set(rec.prompt.tags) | {GOLD_TAG})
        (prompt_id,) = import_records(session=session, records=[rec.prompt]).ids
        ra, rb = Response(prompt_id=prompt_id, text=rec.a), Response(prompt_id=prompt_id, text=rec.b)
        session.add_all([ra, rb])
        session.flush()
        comp = open_comparison(
            session=session,
            prompt_id=prompt_id,
            response_a_id=stored_id(ra),
            response_b_id=stored_id(rb),
            strategy="gold",
        )
        mark_gold(session=session, comparison_id=stored_id(comp), answer=rec.answer)
        ids.append(stored_id(comp))
    return ids
