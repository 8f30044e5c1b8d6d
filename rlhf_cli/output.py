"""Shared plumbing for CLI commands: sessions, output, progress."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa
import typer

from rlhf import db
from rlhf.errors import ConfigError
from rlhf.settings import get_settings


@contextmanager
def session() -> Iterator[Any]:
    settings = get_settings()
    engine = db.get_engine(settings.database_url)
    if not sa.inspect(engine).has_table("alembic_version"):
        raise ConfigError(f"database {_safe_url(settings.database_url)} is not initialised: run `rlhf init` first")
    with db.session_scope(engine) as s:
        yield s


def _safe_url(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return to_jsonable(value.model_dump())
    return value


def print_json(value: Any) -> None:
    typer.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Rows as an aligned table (rich); a plain one, never wrapped, when not on a terminal."""
    if not rows:
        typer.echo("(none)")
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    terminal = sys.stdout.isatty()
    table = Table(
        *(c.upper() for c in columns),
        box=box.SIMPLE_HEAD if terminal else None,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if terminal else None,
    )
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    # Piped output is read by scripts: no colour, and as wide as the rows need.
    Console(no_color=not terminal, highlight=False, width=None if terminal else 10_000).print(table)


def _cell(v: Any) -> str:
    v = to_jsonable(v)
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, str) and "T" in v and v[:4].isdigit():
        return v[:19].replace("T", " ")
    return str(v)


def follow(poll: Callable[[], tuple[bool, int | None, int | None, str]], label: str, interval: float = 1.0) -> None:
    """Show progress until ``poll`` says done. ``poll`` → (done, step, total, note).

    A progress bar on a terminal; plain lines (one per change) otherwise, for logs and CI.
    """
    if sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            transient=False,
        ) as bar:
            task = bar.add_task(label, total=None, note="")
            while True:
                done, step, total, note = poll()
                bar.update(task, completed=step or 0, total=total, note=note)
                if done:
                    return
                time.sleep(interval)
    last = None
    while True:
        done, step, total, note = poll()
        line = f"{label}: step {step or 0}/{total or '?'} {note}".rstrip()
        if line != last:
            typer.echo(line, err=True)
            last = line
        if done:
            return
        time.sleep(interval)
