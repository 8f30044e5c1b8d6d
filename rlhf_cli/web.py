"""``rlhf serve`` (the web app) and ``rlhf leaderboard``.

The web app lives in ``feedback_ui``; it is imported only inside ``serve`` so that the
other commands never load the web stack (or Gradio).
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Annotated

import typer

from rlhf import db
from rlhf.settings import get_settings
from rlhf_cli.output import print_json, print_table, session
from rlhf_cli.web_workers import MAX_WORKERS, Supervisor, refusals, uvicorn_config


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(leaderboard)


def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (default RLHF_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default RLHF_PORT)")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_WORKERS,
            help="web processes, on ports PORT … PORT+N-1, for a reverse proxy that keeps each browser "
            "on one of them (deploy/nginx/rlhf.conf); more than 1 needs PostgreSQL, RLHF_BROKER_URL "
            "and RLHF_INFERENCE_URL",
        ),
    ] = 1,
) -> None:
    """The web app: REST API under /api, rater and console pages at /."""
    settings = get_settings()
    settings.check_secrets()  # before waiting on the database: a bad secret is the quicker error to see
    host, port = host or settings.host, port or settings.port
    if workers > 1:
        reasons = refusals(settings)
        if port + workers - 1 > 65535:
            reasons.append(f"--port {port} with --workers {workers} would need ports past 65535")
        if reasons:
            typer.echo(f"error: rlhf serve --workers {workers} refused:", err=True)
            for reason in reasons:
                typer.echo(f"  {reason}", err=True)
            raise typer.Exit(2)
    db.wait_for_database(settings.database_url)
    db.migrate(settings.database_url)  # once, here: never by several processes at the same time
    if workers > 1:
        urls = ", ".join(f"http://{host}:{p}" for p in range(port, port + workers))
        typer.echo(
            f"serving with {workers} processes: {urls}; put a reverse proxy in front that keeps "
            "each browser on one process (deploy/nginx/rlhf.conf)",
            err=True,
        )
        raise typer.Exit(Supervisor(host, port, workers).run())

    import uvicorn

    from feedback_ui.app import create_app  # heavy: loads FastAPI and the whole web app
    from workers.dispatch import job_queue

    app = create_app(settings, jobs=job_queue(settings))
    # Request threads spend most of their time waiting on the database; a shorter GIL switch
    # interval (default 5 ms) hands the interpreter over sooner when their answer arrives.
    # Measured with bench/vote_load.py on PostgreSQL: +13 % votes/s, p95 latency 1.4 s -> 0.8 s.
    sys.setswitchinterval(0.0005)
    typer.echo(f"serving on http://{host}:{port} (API docs at /api/docs)", err=True)
    uvicorn.Server(uvicorn_config(app, settings, host, port)).run()


def leaderboard(
    json_: Annotated[bool, typer.Option("--json", help="print only JSON")] = False,
    bootstrap: Annotated[int, typer.Option(help="resamples for the 95% intervals (0: none)")] = 200,
    include_simulated: Annotated[bool, typer.Option(help="also count simulated raters' votes")] = False,
) -> None:
    """Checkpoints ranked from human votes between them (Bradley–Terry, Elo-like scale, 95% intervals)."""
    from rlhf.services.leaderboard import leaderboard as fit

    with session() as s:
        board = fit(session=s, bootstrap=bootstrap, include_simulated=include_simulated)
    rows = [asdict(st) for st in board.standings]
    if json_:
        print_json({"votes": board.votes, "bootstrap": board.bootstrap, "standings": rows})
        return
    print_table(
        rows,
        ["rank", "checkpoint_id", "name", "status", "rating", "ci_low", "ci_high", "votes", "wins", "losses", "ties"],
    )
    typer.echo(f"{board.votes} votes between different checkpoints")
