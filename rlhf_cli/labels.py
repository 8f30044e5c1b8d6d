"""``rlhf label``: a reward model labels the open comparisons it is sure about (a worker job)."""

from __future__ import annotations

import typer

from rlhf_cli.jobs import wait_for_job
from rlhf_cli.output import print_json, session


def register(app: typer.Typer) -> None:
    app.command()(label)


def label(
    reward_model: str = typer.Option(
        ..., help="reward checkpoint (id or name); its training run's held-out human votes calibrate it"
    ),
    min_confidence: float = typer.Option(
        ...,
        help="label a pair when the calibrated probability of the "
        "preferred answer is at least this (strictly between "
        "0.5 and 1)",
    ),
    wait: bool = typer.Option(False, help="wait until the labels are stored; exit non-zero if the job fails"),
    json_: bool = typer.Option(False, "--json", help="with --wait: print the job's result as JSON"),
) -> None:
    """Machine-label open comparisons where the reward model is sure; the rest go to people first.

    Machine labels never count toward a comparison's vote target, nor in agreement, gold or
    the leaderboard; training uses them only with `rlhf train ... --labels machine|both`.
    """
    from rlhf.jobs.labelling import execute_label_job
    from rlhf.jobs.submit import submit_label
    from rlhf.services.machine_labels import get_label_job
    from workers.dispatch import job_queue

    with session() as s:
        job_id = submit_label(
            session=s, queue=job_queue(), reward_checkpoint_id=reward_model, min_confidence=min_confidence
        ).id
    typer.echo(f"label job {job_id} queued")
    if not wait:
        return

    r = wait_for_job(execute_label_job, job_id, get_label_job, f"label job {job_id}")
    if json_:
        print_json(r)
        return
    c = r["calibration"]
    typer.echo(
        f"labelled {r['labelled']} of {r['scored']} open comparisons at p >= {r['min_confidence']:g}; "
        f"{r['left_for_people']} left for people first"
    )
    typer.echo(
        f"calibration on {c['heldout']} held-out human comparisons: accuracy {c['accuracy']:.3f}, "
        f"ECE {c['ece']:.3f}, Brier {c['brier']:.3f}, scale {c['scale']:.4g}"
    )
