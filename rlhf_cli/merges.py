"""``rlhf checkpoints merge``: an adapter checkpoint merged into a new full checkpoint (a worker job)."""

from __future__ import annotations

import typer

from rlhf_cli.jobs import wait_for_job
from rlhf_cli.output import print_json, session


def register(checkpoints_app: typer.Typer) -> None:
    checkpoints_app.command("merge")(merge)


def say_merging(job, *, err: bool = False) -> None:
    """One line when serving a checkpoint queued the merged copy an inference engine needs."""
    if job is None:
        return
    if job.status.value == "failed":
        typer.echo(
            f"its merge job {job.id} for the inference engine failed: {job.error}; serve it again to retry", err=True
        )
    else:
        typer.echo(
            f"merge job {job.id} is making its copy for the inference engine; it joins arena battles when that is done",
            err=err,
        )


def merge(
    checkpoint: str,
    name: str = typer.Option(None, help="name of the new checkpoint (default: NAME-merged)"),
    wait: bool = typer.Option(
        False, help="wait until the new checkpoint is registered and print its id; exit non-zero if the merge fails"
    ),
    json_: bool = typer.Option(False, "--json", help="with --wait: print the job's result as JSON"),
) -> None:
    """Merge a LoRA adapter checkpoint into its base: a worker makes a new full checkpoint whose parent is the
    adapter one. Prints the merge job; with --wait, the new checkpoint's id as the last line."""
    from rlhf.jobs.merging import execute_merge_job
    from rlhf.jobs.submit import submit_merge
    from rlhf.services.merges import get_merge_job
    from workers.dispatch import job_queue

    with session() as s:
        job_id = submit_merge(session=s, queue=job_queue(), checkpoint_id=checkpoint, name=name).id
    typer.echo(f"merge job {job_id} queued", err=json_)  # with --json, stdout is the JSON alone
    if not wait:
        return
    result = wait_for_job(execute_merge_job, job_id, get_merge_job, f"merge job {job_id}")
    if json_:
        print_json(result)
        return
    typer.echo(result["checkpoint_id"])
