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


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(leaderboard)


def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on (default RLHF_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default RLHF_PORT)")] = None,
) -> None:
    """The web app: REST API under /api, rater and console pages at /."""
    import uvicorn

    from feedback_ui.app import create_app  # heavy: loads FastAPI and the whole web app
    from workers.dispatch import job_queue

    settings = get_settings()
    settings.check_secrets()  # before waiting on the database: a bad secret is the quicker error to see
    db.wait_for_database(settings.database_url)
    db.migrate(settings.database_url)
    app = create_app(settings, jobs=job_queue(settings))
    # Request threads spend most of their time waiting on the database; a shorter GIL switch
    # interval (default 5 ms) hands the interpreter over sooner when their answer arrives.
    # Measured with bench/vote_load.py on PostgreSQL: +13 % votes/s, p95 latency 1.4 s -> 0.8 s.
    sys.setswitchinterval(0.0005)
    host, port = host or settings.host, port or settings.port
    typer.echo(f"serving on http://{host}:{port} (API docs at /api/docs)", err=True)
    uvicorn.Server(uvicorn_config(app, settings, host, port)).run()


def uvicorn_config(app, settings, host: str, port: int):
    """How ``rlhf serve`` runs uvicorn: forwarded headers believed only from ``RLHF_FORWARDED_ALLOW_IPS``.

    A proxy in that list must overwrite ``X-Forwarded-For`` (nginx: ``proxy_set_header
    X-Forwarded-For $remote_addr``); one that passes on what the client sent lets the
    client choose the address the app logs.
    """
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_config=None,
    )  # keep our log format (JSON lines when RLHF_LOG_FORMAT=json)


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
