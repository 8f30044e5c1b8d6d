"""A run's snapshot phase as its worker runs it: rows built from the frozen votes, or the run failed."""

import pytest

from rlhf.errors import InvalidInput
from rlhf.jobs.training import execute_run
from rlhf.models import JobStatus
from rlhf.services.runs import create_run, get_run, list_runs
from rlhf.services.votes import record_vote
from tests import factories


def test_a_run_whose_votes_make_no_row_is_refused_or_failed_with_the_reason(session, settings):
    alice, bob = factories.user(session), factories.user(session, "bob")
    factories.comparisons(session, [("x", "y")], serve=True)
    (level,) = factories.comparisons(session, [("p", "q")], target_votes=2, checkpoint_path="org/two")
    with pytest.raises(InvalidInput, match="no usable votes"):
        create_run(session=session, algorithm="dpo")  # nothing voted: refused in the request
    session.commit()
    assert list_runs(session=session) == []  # and nothing of it stored
    record_vote(session=session, rater=alice, comparison_id=level.id, choice="a", as_shown=False)
    record_vote(session=session, rater=bob, comparison_id=level.id, choice="b", as_shown=False)
    # One a, one b: usable votes, but a level majority, which only building the rows finds out.
    run = create_run(session=session, algorithm="dpo")
    session.commit()
    assert execute_run(run.id, settings) is JobStatus.failed
    session.expire_all()
    failed = get_run(session=session, run_id=run.id)
    assert failed.status is JobStatus.failed and "no usable votes" in failed.error
