"""Machine labels as people meet them: never a vote toward a target, never in agreement, gold or the
leaderboard, handed out last, in training only when a snapshot asks; and refused thresholds."""

from __future__ import annotations

import math

import pytest
from sqlmodel import select

from rlhf.errors import InvalidInput
from rlhf.models import (
    CheckpointKind,
    Choice,
    Comparison,
    ComparisonStatus,
    LabelJob,
    Response,
    Role,
    TrainingRun,
    Vote,
    VoteKind,
)
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.comparisons import next_for_rater
from rlhf.services.dataset import take_snapshot
from rlhf.services.gold import mark_gold
from rlhf.services.leaderboard import leaderboard
from rlhf.services.machine_labels import create_label_job, machine_rater, record_machine_labels
from rlhf.services.quality import measure
from rlhf.services.soft_labels import rater_reliability
from rlhf.services.stats import overall_stats
from rlhf.services.users import authenticate, create_user
from rlhf.services.votes import record_vote
from rlhf.training.calibration import MIN_HELDOUT, calibrate, fit_scale
from tests import factories


def _reward_model(session, heldout: int = MIN_HELDOUT):
    run = TrainingRun(algorithm="reward", snapshot={"vote_ids": [], "rows": 0, "hash": "x"})
    session.add(run)
    session.flush()
    return register_checkpoint(
        session=session,
        path="org/rm",
        name=f"rm-{heldout}",
        kind=CheckpointKind.reward,
        run_id=run.id,
        metrics={"heldout_comparison_ids": list(range(heldout))},
    )


def _label(session, comps, choices, p=0.95, reward_id=1):
    return record_machine_labels(
        session=session, reward_checkpoint_id=reward_id, labels=[(c.id, Choice(x), p) for c, x in zip(comps, choices)]
    )


def test_a_machine_label_leaves_the_pair_open_with_its_vote_count(session):
    comps = factories.comparisons(session, [("x", "y"), ("p", "q")], target_votes=1)
    assert _label(session, comps, "ab") == 2
    session.expire_all()
    for comp in comps:
        comp = session.get(Comparison, comp.id)
        assert comp.status is ComparisonStatus.open and comp.vote_count == 0
    # A person still votes on it, and that vote (not the machine's) fills the target.
    record_vote(session=session, rater=factories.user(session), comparison_id=comps[0].id, choice="b", as_shown=False)
    session.expire_all()
    assert session.get(Comparison, comps[0].id).status is ComparisonStatus.closed
    assert _label(session, comps, "ab") == 0  # labelled once; a closed pair is not labelled again


def test_people_are_handed_unlabelled_pairs_before_machine_labelled_ones(session):
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(4)], target_votes=1)
    _label(session, comps[:2], "aa")  # the two oldest pairs are machine-labelled
    rater = factories.user(session)
    seen = []
    for _ in range(4):
        handout = next_for_rater(session=session, rater=rater)
        seen.append(handout.comparison_id)
        record_vote(session=session, rater=rater, comparison_id=handout.comparison_id, choice="a")
    assert seen == [comps[2].id, comps[3].id, comps[0].id, comps[1].id]


def test_machine_labels_count_in_no_agreement_reliability_gold_or_vote_statistics(session):
    r1, r2 = factories.user(session, "r1"), factories.user(session, "r2")
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(6)], target_votes=2)
    for comp in comps:
        for r in (r1, r2):
            record_vote(session=session, rater=r, comparison_id=comp.id, choice="a", as_shown=False)
    gold = factories.comparisons(session, [("g", "h")], checkpoint_path="org/gold")[0]
    mark_gold(session=session, comparison_id=gold.id, answer="a")
    before = measure(session=session).as_dict()
    # The machine disagrees with everyone, on the shared pairs and on the gold pair.
    session.add_all(
        [
            Vote(
                comparison_id=c.id,
                rater_id=machine_rater(session=session).id,
                choice=Choice.b,
                label_p=0.9,
                kind=VoteKind.machine,
                source="machine:1",
            )
            for c in comps + [gold]
        ]
    )
    session.flush()
    after = measure(session=session).as_dict()
    assert after == before and after["agreement"] == 1.0
    assert "machine" not in {r["name"] for r in after["raters"]}
    assert machine_rater(session=session).id not in rater_reliability(session=session)
    counts = overall_stats(session=session)
    assert counts["votes"] == 12 and counts["machine_labels"] == 7 and "machine" not in counts["votes_by_rater"]


def test_machine_labels_never_rank_checkpoints(session):
    (comp,) = factories.comparisons(session, [("x", "y")])
    other = register_checkpoint(session=session, path="org/other", name="other")
    resp_b = session.get(Response, comp.response_b_id)  # the two answers come from different checkpoints
    resp_b.checkpoint_id = other.id
    session.add(resp_b)
    session.flush()
    _label(session, [comp], "a")
    for include_simulated in (False, True):
        board = leaderboard(session=session, bootstrap=0, include_simulated=include_simulated)
        assert board.votes == 0 and all(s.rating is None for s in board.standings)


def test_labels_choose_the_snapshot_rows(session):
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(4)], target_votes=3)
    rater = factories.user(session)
    for comp in comps[:2]:
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a", as_shown=False)
    _label(session, comps[1:], "bbb", p=0.93)  # one pair people also voted on, two only the machine labelled

    human = take_snapshot(session=session)
    assert (human.labels, human.rows, human.machine_rows) == ({"human"}, 2, 0)
    machine = take_snapshot(session=session, labels="machine")
    assert (machine.labels, machine.rows, machine.machine_rows) == ({"machine"}, 3, 3)
    both = take_snapshot(session=session, labels="both")
    # A person's vote wins on comps[1].
    assert (both.labels, both.rows, both.machine_rows) == ({"human", "machine"}, 4, 2)
    assert both.model_dump(mode="json")["labels"] == "both"  # stored by its name, as before

    from rlhf.services.dataset import snapshot_rows

    rows = {r["comparison_id"]: r for r in snapshot_rows(session=session, snapshot=both)}
    assert rows[comps[1].id]["chosen"][0]["content"] == "x1" and "label_source" not in rows[comps[1].id]
    assert rows[comps[3].id]["chosen"][0]["content"] == "y3" and rows[comps[3].id]["label_p"] == 0.93
    assert rows[comps[3].id]["label_source"] == "machine"
    with pytest.raises(InvalidInput, match="labels must be one of human, machine, judge, both, all"):
        take_snapshot(session=session, labels="robots")


def test_a_run_records_its_labels_choice(session):
    factories.comparisons(session, [("x", "y")], serve=True)
    comps = factories.comparisons(session, [("p", "q"), ("r", "s")], checkpoint_path="org/two")
    _label(session, comps, "ab")
    from rlhf.services.run_data import build_snapshot
    from rlhf.services.runs import create_run

    run = create_run(session=session, algorithm="dpo", labels="machine")
    build_snapshot(session=session, run=run)
    assert run.snapshot["labels"] == "machine" and run.snapshot["rows"] == 2
    with pytest.raises(InvalidInput, match="no usable votes"):
        create_run(session=session, algorithm="dpo")  # default human: nobody has voted


@pytest.mark.parametrize("bad", [0.5, 1.0, 0.3, 1.2, -1, "high", None])
def test_a_threshold_outside_the_open_interval_is_refused(session, bad):
    rm = _reward_model(session)
    with pytest.raises(InvalidInput, match="strictly between 0.5 and 1|must be a number"):
        create_label_job(session=session, reward_checkpoint_id=rm.id, min_confidence=bad)
    assert session.exec(select(LabelJob)).all() == []


def test_a_label_job_needs_a_reward_model_with_enough_heldout_votes(session):
    few = _reward_model(session, heldout=MIN_HELDOUT - 1)
    with pytest.raises(InvalidInput, match=f"held out only {MIN_HELDOUT - 1} comparisons"):
        create_label_job(session=session, reward_checkpoint_id=few.id, min_confidence=0.9)
    policy = register_checkpoint(session=session, path="org/policy", name="policy")
    with pytest.raises(InvalidInput, match="not a reward model"):
        create_label_job(session=session, reward_checkpoint_id=policy.id, min_confidence=0.9)
    unknown = register_checkpoint(session=session, path="org/rm2", name="imported-rm", kind=CheckpointKind.reward)
    with pytest.raises(InvalidInput, match="no record of held-out human votes"):
        create_label_job(session=session, reward_checkpoint_id=unknown.id, min_confidence=0.9)
    job = create_label_job(session=session, reward_checkpoint_id=_reward_model(session).id, min_confidence=0.9)
    assert job.status.value == "queued" and job.min_confidence == 0.9


def test_the_machine_rater_cannot_log_in_and_no_person_is_made_one(session):
    machine = machine_rater(session=session)
    assert machine.role is Role.machine and not machine.active and not machine.role.allows(Role.rater)
    assert authenticate(session=session, name="machine", password="anything at all") is None
    with pytest.raises(InvalidInput, match="machine role"):
        create_user(session=session, name="robot", role="machine", password="long enough pw")


def test_temperature_scaling_recovers_the_scale_and_refuses_too_few_votes():
    import random

    rng = random.Random(0)
    margins = [rng.uniform(-3, 3) for _ in range(4000)]
    true_scale = 1.7
    targets = [1.0 if rng.random() < 1 / (1 + math.exp(-true_scale * m)) else 0.0 for m in margins]
    assert fit_scale(margins, targets) == pytest.approx(true_scale, rel=0.1)
    cal = calibrate(margins, targets)
    assert cal.heldout == 4000 and cal.ece < 0.03 and 0.5 < cal.accuracy < 1
    assert cal.probability(1.0) == pytest.approx(1 / (1 + math.exp(-cal.scale)))
    assert cal.probability(-1.0) == cal.probability(1.0)  # the probability of the preferred answer
    with pytest.raises(InvalidInput, match=f"at least {MIN_HELDOUT}"):
        calibrate(margins[: MIN_HELDOUT - 1], targets[: MIN_HELDOUT - 1])
    # Margins that say nothing give a scale of 0: every probability is one half, nothing is labelled.
    assert fit_scale([1.0, 1.0, -1.0, -1.0], [0.0, 1.0, 0.0, 1.0]) == 0.0
