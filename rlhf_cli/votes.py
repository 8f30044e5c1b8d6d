"""``rlhf votes …``: votes by kind (human, simulated, machine, judge), listed and, for a program's, removed."""

from __future__ import annotations

from typing import Annotated

import typer

from rlhf_cli.output import print_json, print_table, session

votes_app = typer.Typer(
    help="Votes by kind: people's, simulated raters', machine labels, a judge's.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(votes_app, name="votes")


@votes_app.command("kinds")
def votes_kinds(json_: bool = typer.Option(False, "--json")) -> None:
    """How many votes of each kind are stored."""
    from rlhf.services.vote_admin import counts_by_kind

    with session() as s:
        counts = counts_by_kind(session=s)
    if json_:
        print_json(counts)
        return
    print_table([{"kind": k, "votes": n} for k, n in counts.items()], ["kind", "votes"])


@votes_app.command("list")
def votes_list(
    kind: Annotated[str | None, typer.Option(help="human, simulated, machine or judge")] = None,
    source: Annotated[str | None, typer.Option(help="only this source, e.g. simulated:shorter")] = None,
    limit: int = typer.Option(100, help="at most this many, newest first"),
    offset: int = typer.Option(0, help="skip this many first"),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """Votes newest first, with their rater, kind and source."""
    from rlhf.services.vote_admin import list_votes

    with session() as s:
        rows = list_votes(session=s, kind=kind, source=source, limit=limit, offset=offset)
    if json_:
        print_json(rows)
        return
    print_table(rows, ["id", "comparison_id", "rater", "kind", "source", "choice", "label_p", "created_at"])


@votes_app.command("remove")
def votes_remove(
    kind: Annotated[str, typer.Option(help="simulated, machine or judge (people's votes are never removed in bulk)")],
    source: Annotated[str | None, typer.Option(help="only this source, e.g. simulated:shorter")] = None,
    yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
    json_: bool = typer.Option(False, "--json"),
) -> None:
    """Remove every vote of a kind a program cast; the pairs simulated votes filled reopen for people.

    Votes a training run's snapshot holds stay, so every run can still be verified and redone.
    """
    from rlhf.services.vote_admin import counts_by_kind, parse_kind, remove_votes

    kind_ = parse_kind(kind)
    if not yes:
        with session() as s:
            n = counts_by_kind(session=s)[kind_.value]
        typer.confirm(f"remove up to {n} {kind_.value} votes{f' of {source}' if source else ''}?", abort=True)
    with session() as s:
        result = remove_votes(session=s, kind=kind_, source=source).as_dict()
    if json_:
        print_json(result)
        return
    typer.echo(
        f"removed {result['removed']} {result['kind']} votes; {result['kept_for_runs']} kept (training runs "
        f"hold them); {result['reopened']} comparisons open again"
    )
