"""``rlhf checkpoints merge``: queues a merge job; ``--wait`` runs it (no broker) and prints the new checkpoint's id.
``rlhf checkpoints serve`` of a LoRA checkpoint queues the merged copy an inference engine serves."""

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from rlhf.models import Checkpoint, JobStatus, MergeJob, MergeTarget
from rlhf.services.checkpoints import register_checkpoint
from rlhf_cli.main import app
from tests.adapters import make_adapter

pytestmark = pytest.mark.slow


def test_merge_queues_a_job_and_wait_prints_the_new_checkpoint(session, tiny_model_dir, tmp_path):
    base = register_checkpoint(session=session, path=str(tiny_model_dir), name="tiny", serve=True)
    lora = register_checkpoint(
        session=session,
        path=str(make_adapter(tiny_model_dir, tmp_path / "lora")),
        name="lora",
        base_checkpoint_id=base.id,
    )
    session.commit()

    queued = CliRunner().invoke(app, ["checkpoints", "merge", "lora", "--name", "later"])
    assert queued.exit_code == 0, queued.output
    assert queued.output.strip() == "merge job 1 queued"  # no worker here: it waits in the queue

    waited = CliRunner().invoke(app, ["checkpoints", "merge", str(lora.id), "--wait"])
    assert waited.exit_code == 0, waited.output
    new_id = int(waited.stdout.strip().splitlines()[-1])
    session.expire_all()
    new = session.get(Checkpoint, new_id)
    assert (new.name, new.parent_id, new.adapter) == ("lora-merged", lora.id, None)
    assert session.get(MergeJob, 2).status is JobStatus.succeeded

    served = CliRunner().invoke(app, ["checkpoints", "serve", "lora"])
    assert served.exit_code == 0, served.output
    assert "is serving" in served.output and "merge job 3 is making its copy for the inference engine" in served.output
    job = session.exec(select(MergeJob).where(MergeJob.id == 3)).one()
    assert (job.checkpoint_id, job.target, job.status) == (lora.id, MergeTarget.serving, JobStatus.queued)
    refused = CliRunner().invoke(app, ["checkpoints", "merge", "tiny"])
    assert refused.exit_code != 0 and "nothing to merge" in str(refused.exception)
