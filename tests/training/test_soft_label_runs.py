"""Label smoothing reaches DPO's loss: on the same votes and seed, a doubtful label trains a smaller margin."""

from __future__ import annotations

import pytest

from rlhf.jobs.training import execute_run
from rlhf.models import JobStatus
from rlhf.services.runs import create_run, get_run
from tests.training.test_execute_runs import _setup

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)
def test_label_smoothing_shrinks_the_dpo_margin_and_runs_repeat_exactly(session, settings, tiny_model_dir):
    _setup(session, tiny_model_dir, n=16)
    margins = []
    for smoothing in (0.0, 0.45, 0.0):
        run = create_run(
            session=session,
            algorithm="dpo",
            params={"steps": 16, "batch_size": 4, "eval_samples": 0, "label_smoothing": smoothing},
        )
        session.commit()
        assert execute_run(run.id, settings) is JobStatus.succeeded
        session.expire_all()
        metrics = get_run(session=session, run_id=run.id).metrics
        margins.append(metrics["rewards/margins"])
    certain, doubtful, again = margins
    assert certain == again  # same votes, same seed: the same run
    assert certain > 0 and doubtful < 0.8 * certain, margins
