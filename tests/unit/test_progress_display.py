"""The Console and the CLI show a run's stored progress the same way, old rows included."""

from feedback_ui.ui.console_runs import _step, run_detail
from rlhf.models import Algorithm, JobStatus, TrainingRun
from rlhf_cli.jobs import _run_row


def _run(status: JobStatus, progress: dict, **fields) -> TrainingRun:
    return TrainingRun(id=3, algorithm=Algorithm.dpo, base_checkpoint_id=1, status=status, progress=progress, **fields)


def test_a_running_run_shows_its_step_and_loss_then_that_it_evaluates():
    training = _run(JobStatus.running, {"step": 3, "max_steps": 5, "loss": 0.25, "elapsed_s": 1.0})
    assert _step(training) == "3/5" and _run_row(training)["step"] == 3
    assert "step 3/5" in run_detail(training, {}) and "loss 0.25" in run_detail(training, {})
    evaluating = _run(JobStatus.running, {"step": 5, "max_steps": 5, "loss": 0.2, "phase": "evaluating"})
    assert "training done, evaluating the new checkpoint" in run_detail(evaluating, {})


def test_a_run_with_no_progress_yet_and_a_finished_one():
    queued = _run(JobStatus.queued, {})
    assert _step(queued) == "" and _run_row(queued)["step"] is None and "step" not in run_detail(queued, {})
    assert _step(_run(JobStatus.running, {"step": 4, "max_steps": None})) == "4"
    done = _run(JobStatus.succeeded, {"step": 5, "max_steps": 5, "loss": 0.2}, metrics={"final_loss": 0.125})
    assert "step 5/5" in run_detail(done, {}) and "final_loss 0.125" in run_detail(done, {})
