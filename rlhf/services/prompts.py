"""Prompt import (JSONL, CSV, Parquet) and lookup.

An import is all or nothing: every record is parsed and validated first, and any bad
line stops the import, before anything is written, with an error that names the first
:data:`MAX_NAMED_ERRORS` bad lines and counts them all (so one pass fixes a file).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, StrictInt, StrictStr, ValidationError
from sqlmodel import Session, col, select

from rlhf.errors import InvalidInput
from rlhf.input_rules import TOO_DEEP, check_tags, check_text, too_deep
from rlhf.models import Prompt, stored_id

MAX_PROMPT_CHARS = 20_000
MAX_ID_CHARS = 256  # the column's width
MAX_NAMED_ERRORS = 20


class BadLines:
    """The errors of one all-or-nothing import, gathered line by line instead of stopping at the first."""

    def __init__(self, name: str):
        self.name = name
        self.errors: list[str] = []

    def check(self, parse, *args):
        """``parse(*args)``, or None with its error noted when the line is bad."""
        try:
            return parse(*args)
        except InvalidInput as exc:
            self.errors.append(str(exc))
            return None

    def raise_any(self) -> None:
        if not self.errors:
            return
        if len(self.errors) == 1:
            raise InvalidInput(self.errors[0])
        named = "; ".join(self.errors[:MAX_NAMED_ERRORS])
        rest = len(self.errors) - MAX_NAMED_ERRORS
        more = f"; and {rest} more" if rest > 0 else ""
        raise InvalidInput(f"{self.name}: {len(self.errors)} bad lines, nothing imported. {named}{more}")


@dataclass
class PromptRecord:
    messages: list[dict[str, str]]
    external_id: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    created: int
    skipped: int  # already present (same id)
    ids: list[int]


class _Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: StrictStr


class _RecordIn(BaseModel):
    """One imported record as it may arrive; the checks pydantic cannot express follow in :func:`parse_record`."""

    prompt: StrictStr | None = None
    messages: list[_Message] | None = None
    id: StrictStr | StrictInt | None = None  # StrictInt: a JSON true is not an id
    tags: list[StrictStr] | StrictStr | None = None


# What each field's type error means to the person who wrote the file.
_FIELD_ERRORS = {
    "prompt": "'prompt' must be a non-empty string",
    "messages": "'messages' must be a non-empty list",
    "id": "'id' must be a string or an integer",
    "tags": "'tags' must be a list of strings",
}


def parse_record(raw: Any, where: str) -> PromptRecord:
    """Validate one record (a dict with ``prompt`` or ``messages``); ``where`` names it in errors."""
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: expected an object with a 'prompt' or 'messages' field")
    try:
        record = _RecordIn.model_validate(raw)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        if loc[0] == "messages" and len(loc) > 1 and isinstance(loc[1], int):
            raise InvalidInput(
                f"{where}: messages[{loc[1]}] needs a role (system/user/assistant) and string content"
            ) from None
        raise InvalidInput(f"{where}: {_FIELD_ERRORS[str(loc[0])]}") from None
    if record.messages is not None:
        if not record.messages:
            raise InvalidInput(f"{where}: {_FIELD_ERRORS['messages']}")
        if record.messages[-1].role != "user":
            raise InvalidInput(f"{where}: the last message must be from the user")
        messages = [m.model_dump() for m in record.messages]
    elif "prompt" in raw:
        if not (record.prompt or "").strip():
            raise InvalidInput(f"{where}: {_FIELD_ERRORS['prompt']}")
        messages = [{"role": "user", "content": record.prompt}]
    else:
        raise InvalidInput(f"{where}: missing 'prompt' (a string) or 'messages' (a list)")
    for m in messages:
        check_text(m["content"], where)
    if sum(len(m["content"]) for m in messages) > MAX_PROMPT_CHARS:
        raise InvalidInput(f"{where}: prompt longer than {MAX_PROMPT_CHARS} characters")
    tags = record.tags or []
    if isinstance(tags, str):  # one comma-separated string, as a CSV cell holds them; blank pieces are no tags
        tags = [t for t in tags.split(",") if t.strip()]
    tags = check_tags(tags, where)
    ext = None if record.id is None else check_text(str(record.id), where, "'id'")
    if ext is not None and len(ext) > MAX_ID_CHARS:
        raise InvalidInput(f"{where}: 'id' longer than {MAX_ID_CHARS} characters")
    return PromptRecord(messages=messages, external_id=ext, tags=tags)


def parse_file(path: str | Path, data: bytes | None = None) -> list[PromptRecord]:
    """Parse a JSONL, CSV or Parquet file (by extension) into validated records."""
    path = Path(path)
    data = path.read_bytes() if data is None else data
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _parse_jsonl(data, path.name)
    if suffix == ".csv":
        return _parse_csv(data, path.name)
    if suffix in (".parquet", ".pq"):
        return _parse_parquet(data, path.name)
    raise InvalidInput(f"{path.name}: unsupported file type {suffix or '(none)'}; use .jsonl, .csv or .parquet")


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(f"{name} line {line}: not valid UTF-8") from None


def jsonl_values(data: bytes, name: str, bad: BadLines) -> Iterator[tuple[str, Any]]:
    """(where, value) for each non-blank, decodable line of a JSONL file; ``where`` names the line
    in errors, and lines that are not UTF-8 or not JSON are noted in ``bad``.

    Lines end at ``\n`` only: JSON text may hold a raw U+2028, U+0085 or form feed inside a
    string (``json.dumps(..., ensure_ascii=False)`` writes them so), and ``str.splitlines``
    would cut a valid record there. Each line is decoded on its own, so each bad line,
    whatever is wrong with it, is the one named. A value nested deeper than any record
    (:data:`~rlhf.input_rules.MAX_JSON_DEPTH`) is a bad line too: the parser, and whatever
    walks the value after it, would run out of stack."""
    data = data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data
    for lineno, raw_line in enumerate(data.split(b"\n"), start=1):
        where = f"{name} line {lineno}"
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            bad.errors.append(f"{where}: not valid UTF-8")
            continue
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.errors.append(f"{where}: invalid JSON ({exc.msg})")
            continue
        except RecursionError:
            bad.errors.append(f"{where}: {TOO_DEEP}")
            continue
        except ValueError as exc:  # valid JSON Python will not read, e.g. an integer of 5,000 digits
            bad.errors.append(f"{where}: unreadable JSON ({exc})")
            continue
        if too_deep(value):
            bad.errors.append(f"{where}: {TOO_DEEP}")
            continue
        yield where, value


def _parse_jsonl(data: bytes, name: str) -> list[PromptRecord]:
    bad = BadLines(name)
    records = [bad.check(parse_record, raw, where) for where, raw in jsonl_values(data, name, bad)]
    bad.raise_any()
    return _nonempty(records, name)


def _parse_csv(data: bytes, name: str) -> list[PromptRecord]:
    """Rows of a CSV with a ``prompt`` column (``id`` and ``tags`` optional), quoted as Excel and
    Python's csv write it. A quoted field may span lines; one whose quote is never closed is an
    error naming the line it opens on (a lenient reader would take the rest of the file as its text)."""
    text = _decode(data, name)
    reader = csv.DictReader(io.StringIO(text), strict=True)
    records, bad = [], BadLines(name)
    try:
        if not reader.fieldnames or "prompt" not in reader.fieldnames:
            raise InvalidInput(f"{name} line 1: a CSV needs a 'prompt' column")
        for row in reader:
            raw = {k: v for k, v in row.items() if k in ("prompt", "id", "tags") and v not in (None, "")}
            records.append(bad.check(parse_record, raw, f"{name} line {reader.line_num}"))
    except csv.Error as exc:  # the reader cannot go on after a broken row
        bad.errors.append(_csv_error(text, name, exc, reader.reader.line_num))
    bad.raise_any()
    return _nonempty(records, name)


# A quote that opens a field: at the start of the text, or after a comma or a line break.
_FIELD_QUOTE = re.compile(r'(?<![^,\r\n])"')


def _csv_error(text: str, name: str, exc: csv.Error, line: int) -> str:
    """The error for a CSV the reader gave up on at ``line``, the last line it read.

    A quoted field never closed runs on to the end of the file (or past the reader's field
    size limit), where the reader reports it; the line it opens on is the one to fix."""
    opened = _unclosed_quote(text)
    if opened is not None and (opened_line := text.count("\n", 0, opened) + 1) <= line:
        return f"{name} line {opened_line}: a quoted field opens here and its quote is never closed"
    return f"{name} line {line}: {exc}"


def _unclosed_quote(text: str) -> int | None:
    """Where the quoted field still open at the end of ``text`` begins (an offset), or None."""
    pos = 0
    while (match := _FIELD_QUOTE.search(text, pos)) is not None:
        opened, pos = match.start(), match.end()
        while True:  # to the closing quote; a doubled quote inside is one literal quote
            end = text.find('"', pos)
            if end < 0:
                return opened
            if text.startswith('"', end + 1):
                pos = end + 2
                continue
            pos = end + 1
            break
    return None


def _parse_parquet(data: bytes, name: str) -> list[PromptRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise InvalidInput(f"{name}: not a readable Parquet file ({exc})") from None
    bad = BadLines(name)
    records = [bad.check(parse_record, row, f"{name} row {i + 1}") for i, row in enumerate(table.to_pylist())]
    bad.raise_any()
    return _nonempty(records, name)


def _nonempty(records: list[PromptRecord], name: str) -> list[PromptRecord]:
    if not records:
        raise InvalidInput(f"{name}: no prompts found")
    return records


def import_records(*, session: Session, records: Iterable[PromptRecord], tags: list[str] | None = None) -> ImportResult:
    """Insert validated records; records whose id already exists are skipped, not duplicated.

    ``tags`` (added to every record) obey the same rules as a record's own."""
    tags = check_tags(list(tags or []), "tags for every prompt")
    records = list(records)
    ext_ids = [r.external_id for r in records if r.external_id]
    if len(ext_ids) != len(set(ext_ids)):
        dup = next(e for e in ext_ids if ext_ids.count(e) > 1)
        raise InvalidInput(f"id {dup!r} appears more than once in the import")
    existing: set[str | None] = set()
    for chunk in _chunks(ext_ids, 500):
        existing |= set(session.exec(select(Prompt.external_id).where(col(Prompt.external_id).in_(chunk))))
    created: list[Prompt] = []
    for r in records:
        if r.external_id and r.external_id in existing:
            continue
        p = Prompt(external_id=r.external_id, messages=r.messages, tags=sorted(set(r.tags) | set(tags)))
        session.add(p)
        created.append(p)
    session.flush()
    return ImportResult(created=len(created), skipped=len(records) - len(created), ids=[stored_id(p) for p in created])


def import_file(
    *, session: Session, path: str | Path, data: bytes | None = None, tags: list[str] | None = None
) -> ImportResult:
    return import_records(session=session, records=parse_file(path, data), tags=tags)


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def list_prompts(
    *, session: Session, tag: str | None = None, limit: int | None = None, pool_only: bool = True
) -> list[Prompt]:
    """Prompts in id order. ``pool_only``: only the pool generation jobs, online RL and the held-out
    split draw from (arena conversations join it only when an engineer promotes them)."""
    query = select(Prompt).order_by(col(Prompt.id))
    if pool_only:
        query = query.where(Prompt.in_pool)
    prompts = list(session.exec(query))
    if tag:
        prompts = [p for p in prompts if tag in (p.tags or [])]
    return prompts[:limit] if limit else prompts


def prompt_text(prompt: Prompt) -> str:
    """The last user turn, for display and for rules that look at text."""
    return prompt.messages[-1]["content"]


HELDOUT_TAGS = {"heldout", "eval"}


def split_heldout(prompts: list[Prompt], max_heldout: int = 16) -> tuple[list[Prompt], list[Prompt]]:
    """(train, held-out): prompts tagged ``heldout``/``eval`` if any, else every tenth prompt.

    Online RL never trains on the held-out ones, so the evaluation after a run measures
    the policy on prompts it has not been optimised for.
    """
    tagged = [p for p in prompts if HELDOUT_TAGS & set(p.tags or [])]
    held = tagged or [p for p in prompts if stored_id(p) % 10 == 0]
    held_ids = {p.id for p in held}
    return [p for p in prompts if p.id not in held_ids], held[:max_heldout]
