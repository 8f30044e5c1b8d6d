"""Rows written to a file as they come: JSONL line by line, Parquet in row groups.

A file is written under a temporary name beside its final one and renamed into place only
when complete, so an interrupted export (a crash, a full disk, a killed process) never
leaves a partial file under the name a user or a trainer reads.

Parquet needs one schema for the whole file, and a column's type is known only once a row
has a value in it (a person's row has no ``label_source``; a chunk of per-vote rows may have
no ``tie``). So Parquet goes through the JSONL first: one pass writes the lines and notes every
key, a second infers each chunk's schema and unifies them, a third writes the row groups. Only
a chunk of rows is in memory at any time.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rlhf.errors import InvalidInput

CHUNK = 20_000  # rows per Parquet row group (and per schema inference)


def _dicts(rows: Iterable[BaseModel | dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for r in rows:
        yield r.model_dump() if isinstance(r, BaseModel) else r


def file_format(path: Path, fmt: str | None) -> str:
    fmt = fmt or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "jsonl")
    if fmt not in ("jsonl", "parquet"):
        raise InvalidInput(f"unknown format {fmt!r}; use jsonl or parquet")
    return fmt


def write_stream(rows: Iterable[BaseModel | dict[str, Any]], path: str | Path, fmt: str | None = None) -> int:
    """Write rows to ``path`` as JSONL or Parquet (by ``fmt`` or the extension); returns how many."""
    path = Path(path)
    fmt = file_format(path, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = path.with_name(f".{path.name}.jsonl.tmp")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        keys: dict[str, None] = {}
        count = 0
        with lines.open("w", encoding="utf-8") as fh:
            for r in _dicts(rows):
                if fmt == "parquet":
                    keys.update(dict.fromkeys(r))
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
                count += 1
        if fmt == "jsonl":
            lines.replace(path)
            return count
        _jsonl_to_parquet(lines, tmp, list(keys))
        tmp.replace(path)
        return count
    finally:
        for leftover in (lines, tmp):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _chunks(lines: Path) -> Iterator[list[dict[str, Any]]]:
    with lines.open(encoding="utf-8") as fh:
        while chunk := [json.loads(line) for line in islice(fh, CHUNK)]:
            yield chunk


def _table(chunk: list[dict[str, Any]], columns: list[str], schema=None):
    import pyarrow as pa  # heavy: pyarrow loads only where Parquet is written

    return pa.Table.from_pydict({c: [row.get(c) for row in chunk] for c in columns}, schema=schema)


def _jsonl_to_parquet(lines: Path, out: Path, columns: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [_table(chunk, columns).schema for chunk in _chunks(lines)]
    schema = pa.unify_schemas(schemas, promote_options="permissive") if schemas else pa.schema([])
    with pq.ParquetWriter(out, schema) as writer:
        for chunk in _chunks(lines):
            writer.write_table(_table(chunk, columns, schema))
