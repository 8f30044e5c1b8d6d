"""``rlhf demo``: the whole product on a fresh data dir, offline, on one machine.

Builds the tiny model, imports the bundled prompts, opens comparisons, creates a demo
rater and engineer (passwords printed), and serves the web app with the embedded
worker. ``--rounds N`` first runs N headless rounds with simulated raters (preferring
answers that contain a word) and prints what each did to the model.

The demo's passwords and session key are kept in :data:`CREDENTIALS` inside the data dir
(readable by its owner only), so restarting on the same data keeps everyone logged in
and the same passwords work; they are printed again at every start.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from pathlib import Path

import typer

from rlhf import db
from rlhf.modeling.sample_stats import evaluate_policy, heldout_prompts
from rlhf.modeling.tiny import PROMPTS_PATH, resolve_base_model
from rlhf.settings import get_settings, reset_settings_cache
from rlhf.training.progress import RunProgress
from rlhf_cli.web import serve as serve_web

DEMO_USERS = (("rater", "rater"), ("engineer", "engineer"), ("admin", "admin"))
CREDENTIALS = "demo-credentials.json"
PROGRESS_EVERY_S = 5.0


def _credentials(data_dir: Path) -> dict:
    """The demo's logins and session key: read from the data dir, or made once and kept there."""
    path = data_dir / CREDENTIALS
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("secret_key") and all(name in stored.get("passwords", {}) for name, _ in DEMO_USERS):
            return stored
    stored = {
        "secret_key": secrets.token_urlsafe(32),
        "passwords": {name: secrets.token_urlsafe(9) for name, _ in DEMO_USERS},
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(stored, indent=2))
    tmp.chmod(0o600)
    tmp.replace(path)
    return stored


def _use_data_dir(data_dir: str) -> dict:
    folder = Path(data_dir).resolve()
    credentials = _credentials(folder)
    os.environ["RLHF_DATA_DIR"] = str(folder)
    os.environ.pop("RLHF_DATABASE_URL", None)
    os.environ.pop("RLHF_BROKER_URL", None)
    os.environ["RLHF_DEMO"] = "true"
    os.environ.setdefault("RLHF_SECRET_KEY", credentials["secret_key"])
    reset_settings_cache()
    return credentials


def run_demo(
    *,
    data_dir: str,
    rounds: int = 0,
    word: str = "please",
    serve: bool = True,
    host: str | None = None,
    port: int | None = None,
) -> None:
    from rlhf.jobs.generation import execute_generation_job
    from rlhf.services.checkpoints import register_checkpoint, serving_checkpoints
    from rlhf.services.generation_jobs import create_generation_job
    from rlhf.services.prompts import import_file
    from rlhf.services.users import ensure_user

    credentials = _use_data_dir(data_dir)
    settings = get_settings()
    db.migrate(settings.database_url)
    engine = db.get_engine(settings.database_url)
    typer.echo(f"demo data in {settings.data_dir}")
    with db.session_scope(engine) as s:
        fresh = not serving_checkpoints(session=s)
        if fresh:
            register_checkpoint(
                session=s, path=resolve_base_model("tiny", settings.checkpoints_dir), name="base", serve=True
            )
            import_file(session=s, path=PROMPTS_PATH, tags=["demo"])
    for round_no in range(1, rounds + 1):
        _headless_round(engine, settings, round_no, word)
    if fresh or rounds:
        with db.session_scope(engine) as s:
            job = create_generation_job(session=s, limit=40)
        typer.echo("sampling responses for the raters…")
        execute_generation_job(job.id, settings)
    passwords = credentials["passwords"]
    with db.session_scope(engine) as s:
        for name, role in DEMO_USERS:
            ensure_user(session=s, name=name, role=role, password=passwords[name])
    if not serve:
        return
    host, port = host or settings.host, port or settings.port
    typer.echo(f"\nlog in as (kept in {settings.data_dir / CREDENTIALS}):")
    for name, role in DEMO_USERS:
        typer.echo(f"  {role:9} {name} / {passwords[name]}")
    typer.echo(f"\nopen http://{host}:{port}/  (API docs: http://{host}:{port}/api/docs)\n")
    serve_web(host=host, port=port)


def _headless_round(engine, settings, round_no: int, word: str, seed: int = 0) -> tuple[float, float]:
    """One round; returns the marker word's share of held-out samples before and after.

    ``seed`` seeds the DPO run (data order, initialisation): ``bench/demo_rounds.py`` runs
    rounds over several seeds to give the range the README quotes.
    """
    from rlhf.jobs.generation import execute_generation_job
    from rlhf.jobs.training import execute_run
    from rlhf.services.checkpoints import model_ref, serving_checkpoints
    from rlhf.services.generation_jobs import create_generation_job
    from rlhf.services.runs import create_run, get_run
    from rlhf.services.simulate import simulate

    with db.session_scope(engine) as s:
        before_path = model_ref(session=s, checkpoint=serving_checkpoints(session=s)[-1])
        job = create_generation_job(session=s, limit=64)
    typer.echo(f"round {round_no}: sampling responses to compare…")
    execute_generation_job(job.id, settings)
    with db.session_scope(engine) as s:
        counts = simulate(session=s, rule=f"contains:{word}")
        run = create_run(session=s, algorithm="dpo", serve_on_success=True, params={"seed": seed} if seed else None)
    typer.echo(
        f"round {round_no}: simulated raters cast {counts.get('votes', 0)} votes preferring '{word}'; "
        f"training DPO (run {run.id})…"
    )
    _run_with_progress(engine, settings, run.id, round_no, execute_run)
    with db.session_scope(engine) as s:
        run = get_run(session=s, run_id=run.id)
        if run.status.value != "succeeded":
            raise typer.Exit(f"run {run.id} failed: {run.error}")
        after_path = model_ref(session=s, checkpoint=serving_checkpoints(session=s)[-1])
    prompts = heldout_prompts()
    typer.echo(f"round {round_no}: counting '{word}' in held-out samples before and after…")
    before = evaluate_policy(before_path, prompts, word=word)
    after = evaluate_policy(after_path, prompts, word=word)
    typer.echo(
        f"round {round_no}: '{word}' in {before.marker_rate:.0%} of {before.samples} held-out samples "
        f"before, {after.marker_rate:.0%} after (checkpoint {run.output_checkpoint_id} now serves)"
    )
    return before.marker_rate, after.marker_rate


def _run_with_progress(engine, settings, run_id: int, round_no: int, execute) -> None:
    """Train in a thread and print the run's step every few seconds, so a long round is never silent."""
    from rlhf.services.runs import get_run

    worker = threading.Thread(target=execute, args=(run_id, settings), name=f"demo-run-{run_id}", daemon=True)
    started = time.monotonic()
    worker.start()
    last = None
    while worker.is_alive():
        worker.join(PROGRESS_EVERY_S)
        if not worker.is_alive():
            break
        with db.session_scope(engine) as s:
            progress = RunProgress.stored(get_run(session=s, run_id=run_id).progress)
        if progress and progress.evaluating:
            line = "training done, evaluating the new checkpoint"
        elif progress:
            line = f"step {progress.step}/{progress.max_steps or '?'}"
            if (loss := progress.number("loss")) is not None:
                line += f", loss {loss:.3f}"
        else:
            line = "loading the model"
        if line != last:
            typer.echo(f"round {round_no}: {line} ({time.monotonic() - started:.0f} s)")
            last = line
