"""``rlhf gold …`` (known-answer comparisons that measure raters) and ``rlhf users exclude|include``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rlhf.errors import InvalidInput
from rlhf_cli.output import print_json, print_table, session

gold_app = typer.Typer(
    help="Gold comparisons: a known answer, mixed into raters' queues to measure them.", no_args_is_help=True
)


def register(app: typer.Typer, users_app: typer.Typer) -> None:
    app.add_typer(gold_app, name="gold")
    users_app.command("exclude")(users_exclude)
    users_app.command("include")(users_include)


@gold_app.command("import")
def gold_import(file: Path) -> None:
    """Import gold comparisons from JSONL: prompt (or messages), a, b and answer (a, b, tie or both_bad),
    or prompt, chosen and rejected. All or nothing; an error names the line."""
    from rlhf.services.gold import import_gold

    if not file.is_file():
        raise InvalidInput(f"{file}: no such file")
    with session() as s:
        ids = import_gold(session=s, path=file)
    typer.echo(f"imported {len(ids)} gold comparisons (ids {ids[0]}–{ids[-1]})")


@gold_app.command("mark")
def gold_mark(
    comparison: int,
    answer: Annotated[str, typer.Argument(help="a, b, tie or both_bad, in the comparison's stored order")],
) -> None:
    """Make an existing comparison gold, with its known answer."""
    from rlhf.services.gold import mark_gold

    with session() as s:
        mark_gold(session=s, comparison_id=comparison, answer=answer)
    typer.echo(f"comparison {comparison} is gold (answer {answer})")


@gold_app.command("unmark")
def gold_unmark(comparison: int) -> None:
    """Make a gold comparison a regular one again."""
    from rlhf.services.gold import mark_gold

    with session() as s:
        mark_gold(session=s, comparison_id=comparison, answer=None)
    typer.echo(f"comparison {comparison} is no longer gold")


@gold_app.command("list")
def gold_list(json_: bool = typer.Option(False, "--json")) -> None:
    """Gold comparisons, their answers and how many raters answered them."""
    from sqlmodel import select

    from rlhf.models import Comparison

    with session() as s:
        rows = [
            {
                "id": c.id,
                "prompt_id": c.prompt_id,
                "answer": c.gold_choice,
                "votes": c.vote_count,
                "created_at": c.created_at,
            }
            for c in s.exec(select(Comparison).where(Comparison.is_gold).order_by(Comparison.id))
        ]
    print_json(rows) if json_ else print_table(rows, ["id", "prompt_id", "answer", "votes", "created_at"])


def _set_excluded(name: str, excluded: bool) -> None:
    from rlhf.services.users import get_user, set_excluded

    with session() as s:
        user = get_user(session=s, name=name)
        set_excluded(session=s, user_id=user.id, excluded=excluded)
    typer.echo(f"{name}'s votes are {'left out of' if excluded else 'used again in'} exports and new runs")


def users_exclude(name: str) -> None:
    """Leave a rater's votes out of exports and new training runs (the votes stay stored)."""
    _set_excluded(name, True)


def users_include(name: str) -> None:
    """Use an excluded rater's votes again."""
    _set_excluded(name, False)
