"""``rlhf demo``: one whole round on a fresh data dir, offline, then the web app.

Builds the tiny model, imports the bundled prompts, samples comparisons, lets simulated
raters prefer answers containing a word, trains DPO on their votes, serves the new
checkpoint and measures how often the word now appears, before and after.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer


def _use_data_dir(data_dir: str) -> None:
    from rlhf.settings import reset_settings_cache

    os.environ["RLHF_DATA_DIR"] = str(Path(data_dir).resolve())
    os.environ.pop("RLHF_DATABASE_URL", None)
    os.environ.pop("RLHF_BROKER_URL", None)
    os.environ["RLHF_DEMO"] = "true"
    reset_settings_cache()


def run_demo(*, data_dir: str, rounds: int = 1, word: str = "please") -> None:
    from rlhf import db
    from rlhf.cli.main import resolve_base_model
    from rlhf.evaluation import evaluate_policy, heldout_prompts
    from rlhf.execution import execute_run
    from rlhf.generation import execute_generation_job
    from rlhf.modeling.tiny import PROMPTS_PATH
    from rlhf.services.checkpoints import register_checkpoint, serving_checkpoints
    from rlhf.services.generation_jobs import create_generation_job
    from rlhf.services.prompts import import_file
    from rlhf.services.runs import create_run, get_run
    from rlhf.settings import get_settings
    from rlhf.simulate import simulate

    _use_data_dir(data_dir)
    settings = get_settings()
    db.migrate(settings.database_url)
    engine = db.get_engine(settings.database_url)
    with db.session_scope(engine) as s:
        if not serving_checkpoints(session=s):
            register_checkpoint(session=s, path=resolve_base_model("tiny"), name="base", serve=True)
            import_file(session=s, path=PROMPTS_PATH)
        base_path = serving_checkpoints(session=s)[-1].path
    prompts = heldout_prompts()
    before = evaluate_policy(base_path, prompts, word=word)
    typer.echo(f"base model: '{word}' in {before.marker_rate:.0%} of {before.samples} held-out samples")
    for round_no in range(1, rounds + 1):
        with db.session_scope(engine) as s:
            job = create_generation_job(session=s, limit=64)
        execute_generation_job(job.id, settings)
        with db.session_scope(engine) as s:
            counts = simulate(session=s, rule=f"contains:{word}")
            typer.echo(f"round {round_no}: simulated raters cast {counts.get('votes', 0)} votes "
                       f"preferring answers with '{word}'")
            run = create_run(session=s, algorithm="dpo", serve_on_success=True)
        typer.echo(f"round {round_no}: training DPO (run {run.id})…")
        execute_run(run.id, settings)
        with db.session_scope(engine) as s:
            run = get_run(session=s, run_id=run.id)
            if run.status.value != "succeeded":
                raise typer.Exit(f"run {run.id} failed: {run.error}")
            path = serving_checkpoints(session=s)[-1].path
        after = evaluate_policy(path, prompts, word=word)
        typer.echo(f"round {round_no}: new checkpoint {run.output_checkpoint_id}: '{word}' in "
                   f"{after.marker_rate:.0%} of samples (base {before.marker_rate:.0%})")
