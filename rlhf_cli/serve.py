"""Long-running commands: the worker, the web app, and the demo."""

from __future__ import annotations

import logging
import time

import typer

from rlhf import db
from rlhf.settings import get_settings
from rlhf_cli.demo import run_demo

log = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(demo)


def worker(
    queues: str = typer.Option("train,generate", help="comma-separated queues to take jobs from"),
    concurrency: int = typer.Option(1, help="jobs at once (keep 1 per GPU for training)"),
    once: bool = typer.Option(False, help="embedded mode only: run what is queued now, then exit"),
) -> None:
    """A worker: Celery on the broker, or (no broker configured) a database-polling embedded worker."""
    from rlhf.jobs.reaping import reap_stale

    settings = get_settings()
    db.wait_for_database(settings.database_url)
    reaped = reap_stale(settings)  # work of a worker that died; later ones are found by the periodic reaper
    for kind, ids in reaped.items():
        if ids:
            typer.echo(f"marked stale {kind} {ids} as failed", err=True)
    db.get_engine(settings.database_url).dispose()  # the pool's children must not share these connections
    if settings.embedded:
        from rlhf.jobs.embedded import work_once

        typer.echo("no RLHF_BROKER_URL: running the embedded worker on the database", err=True)
        while True:
            work_once(settings)
            if once:
                return
            time.sleep(2.0)
    from workers.celery_app import app as celery_app  # heavy: loads Celery, which the embedded worker never needs

    celery_app.worker_main(
        [
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            settings.log_level.upper(),
            "--without-gossip",
            "--without-mingle",
        ]
    )


def demo(
    data_dir: str = typer.Option(
        "./rlhf-demo",
        envvar="RLHF_DATA_DIR",
        help="folder for the demo's database, models and logins (default: RLHF_DATA_DIR if set)",
    ),
    rounds: int = typer.Option(0, help="headless rounds with simulated raters to run first"),
    word: str = typer.Option("please", help="the word the simulated raters prefer"),
    serve: bool = typer.Option(True, help="serve the web app afterwards"),
    host: str = typer.Option(None, help="address to listen on (default RLHF_HOST)"),
    port: int = typer.Option(None, help="port (default RLHF_PORT)"),
) -> None:
    """Everything at once, offline: tiny model, prompts, comparisons, demo users, the web app."""
    run_demo(data_dir=data_dir, rounds=rounds, word=word, serve=serve, host=host, port=port)
