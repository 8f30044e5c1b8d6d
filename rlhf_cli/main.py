"""``rlhf``: run the feedback loop from a terminal.

Every command has ``--help``; list/show commands take ``--json``. A user mistake is one
line on stderr and a non-zero exit, never a traceback.

Commands import the domain's tables, services and jobs (and the web app, Celery) inside
themselves, so ``rlhf --help`` and a light command start without them; nothing that
starts the CLI loads torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import sqlalchemy as sa
import typer

from rlhf import db, logging_setup
from rlhf.errors import InvalidInput, RLHFError
from rlhf.modeling.tiny import build_tiny_model, resolve_base_model
from rlhf.settings import get_settings
from rlhf_cli import gold as gold_cli
from rlhf_cli import jobs as jobs_cli
from rlhf_cli import judges as judges_cli
from rlhf_cli import labels as labels_cli
from rlhf_cli import merges as merges_cli
from rlhf_cli import serve as serve_cli
from rlhf_cli import votes as votes_cli
from rlhf_cli import web as web_cli
from rlhf_cli.error_wording import cli_message
from rlhf_cli.output import print_json, print_table, session

app = typer.Typer(
    help="RLHF feedback loop: collect preferences, train on them, serve the result.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
users_app = typer.Typer(help="Raters, engineers and admins.", no_args_is_help=True)
models_app = typer.Typer(help="Build models offline.", no_args_is_help=True)
checkpoints_app = typer.Typer(help="The checkpoint registry.", no_args_is_help=True)
prompts_app = typer.Typer(help="Prompts to sample responses for.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(models_app, name="models")
app.add_typer(checkpoints_app, name="checkpoints")
app.add_typer(prompts_app, name="prompts")
gold_cli.register(app, users_app)
jobs_cli.register(app)
judges_cli.register(app)
labels_cli.register(app)
merges_cli.register(checkpoints_app)
serve_cli.register(app)
votes_cli.register(app)
web_cli.register(app)


@app.command()
def init() -> None:
    """Create or migrate the database (idempotent), create the admin, register the base model."""
    from rlhf.services.checkpoints import list_checkpoints, register_checkpoint
    from rlhf.services.users import ensure_user

    settings = get_settings()
    db.wait_for_database(settings.database_url)
    db.migrate(settings.database_url)
    typer.echo(f"database ready: {sa.engine.make_url(settings.database_url).render_as_string(hide_password=True)}")
    with session() as s:
        if settings.admin_user:
            if not settings.admin_password:
                raise RLHFError("RLHF_ADMIN_USER is set but RLHF_ADMIN_PASSWORD is not")
            ensure_user(session=s, name=settings.admin_user, role="admin", password=settings.admin_password)
            typer.echo(f"admin user: {settings.admin_user}")
        if not list_checkpoints(session=s):
            path = resolve_base_model(settings.base_model, settings.checkpoints_dir)
            ckpt = register_checkpoint(session=s, path=path, name="base", serve=True)
            typer.echo(f"registered base model as checkpoint {ckpt.id} (serving): {path}")


@users_app.command("add")
def users_add(
    name: str,
    role: str = typer.Option("rater", help="rater, engineer or admin"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from stdin"),
) -> None:
    """Add a user."""
    from rlhf.services.users import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with session() as s:
        user = create_user(session=s, name=name, role=role, password=password)
        typer.echo(f"user {user.name} ({user.role.value}) created with id {user.id}")


@users_app.command("logout")
def users_logout(name: str) -> None:
    """End every browser session and bearer token of a user (they log in again; the password stays)."""
    import time

    from rlhf.services.sessions import revoke_user_sessions
    from rlhf.services.users import get_user

    with session() as s:
        user = get_user(session=s, name=name)
        ended = revoke_user_sessions(session=s, user_id=user.id, now=time.time())
    typer.echo(f"ended {ended} session{'s' * (ended != 1)} of {name}")


@users_app.command("list")
def users_list(json_: bool = typer.Option(False, "--json")) -> None:
    """List users."""
    from rlhf.services.users import list_users

    with session() as s:
        rows = [
            {
                "id": u.id,
                "name": u.name,
                "role": u.role,
                "active": u.active,
                "excluded": u.excluded,
                "created_at": u.created_at,
            }
            for u in list_users(session=s)
        ]
    print_json(rows) if json_ else print_table(rows, ["id", "name", "role", "active", "excluded", "created_at"])


@models_app.command("tiny")
def models_tiny(directory: Path, seed: int = typer.Option(0, help="seed for tokenizer, weights and warm-up")) -> None:
    """Build the offline tiny chat model (tokenizer + weights + short SFT warm-up)."""
    path = build_tiny_model(directory, seed=seed)
    typer.echo(str(path))


@checkpoints_app.command("add")
def checkpoints_add(
    path: str,
    name: str = typer.Option(..., help="a unique name"),
    serve: bool = typer.Option(False, help="serve it to raters right away"),
    kind: str = typer.Option(None, help="policy or reward (read from the model when omitted)"),
) -> None:
    """Register a model directory or hub id; prints its id."""
    from rlhf.jobs.submit import queue_serving_copy
    from rlhf.services.checkpoints import register_checkpoint
    from workers.dispatch import job_queue

    with session() as s:
        ckpt = register_checkpoint(session=s, path=path, name=name, serve=serve, kind=kind)
        job = queue_serving_copy(session=s, queue=job_queue(), settings=get_settings(), checkpoint=ckpt)
        typer.echo(ckpt.id)
        merges_cli.say_merging(job, err=True)  # stdout stays the id alone, for scripts


def _checkpoint_row(c) -> dict:
    return {
        "id": c.id,
        "name": c.name,
        "kind": c.kind,
        "status": c.status,
        "parent_id": c.parent_id,
        "run_id": c.run_id,
        "path": c.path,
        "created_at": c.created_at,
        "metrics": c.metrics,
        "adapter": c.adapter,
        "base_checkpoint_id": c.base_checkpoint_id,
    }


@checkpoints_app.command("list")
def checkpoints_list(json_: bool = typer.Option(False, "--json")) -> None:
    """List checkpoints with their kind, status and lineage."""
    from rlhf.services.checkpoints import list_checkpoints

    with session() as s:
        rows = [_checkpoint_row(c) for c in list_checkpoints(session=s)]
    print_json(rows) if json_ else print_table(
        rows, ["id", "name", "kind", "status", "parent_id", "run_id", "adapter", "base_checkpoint_id", "created_at"]
    )


@checkpoints_app.command("serve")
def checkpoints_serve(checkpoint: str) -> None:
    """Serve a checkpoint: its responses enter new comparisons (a LoRA one's merged copy is queued)."""
    from rlhf.jobs.submit import serve
    from workers.dispatch import job_queue

    with session() as s:
        c, job = serve(session=s, queue=job_queue(), settings=get_settings(), checkpoint_id=checkpoint)
        typer.echo(f"checkpoint {c.id} ({c.name}) is serving")
        merges_cli.say_merging(job)


@checkpoints_app.command("retire")
def checkpoints_retire(
    checkpoint: str,
    force: bool = typer.Option(False, "--force", help="retire it even if it is the last serving policy"),
) -> None:
    """Stop serving a checkpoint (it stays in the registry); the last serving policy only with --force."""
    from rlhf.services.checkpoints import retire_checkpoint

    with session() as s:
        c = retire_checkpoint(session=s, checkpoint_id=checkpoint, force=force)
        typer.echo(f"checkpoint {c.id} ({c.name}) is retired")


@prompts_app.command("import")
def prompts_import(file: Path, tag: list[str] = typer.Option([], "--tag", help="add this tag to every prompt")) -> None:
    """Import prompts: JSONL (prompt or messages, optional id, tags), CSV (prompt column) or Parquet."""
    from rlhf.services.prompts import import_file

    if not file.is_file():
        raise InvalidInput(f"{file}: no such file")
    with session() as s:
        result = import_file(session=s, path=file, tags=tag)
    skipped = f" ({result.skipped} already present)" if result.skipped else ""
    typer.echo(f"imported {result.created} prompts{skipped}")


def main() -> None:
    """Entry point: domain errors become one line on stderr and exit code 1."""
    settings = get_settings()
    logging_setup.configure_logging(settings.log_level, json=settings.log_format == "json")
    # Model loading prints progress bars of its own; the CLI shows its own progress instead.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        app()
    except RLHFError as exc:
        typer.echo(f"error: {cli_message(exc)}", err=True)
        sys.exit(1)
    except sa.exc.OperationalError as exc:
        typer.echo(f"error: database unavailable: {exc.orig}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
