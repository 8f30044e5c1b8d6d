"""The Console's machine-label section in a real browser: a bad threshold is refused with the reason,
a good one queues a label job that the server's worker runs, and the page reports what it did."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from rlhf.models import CheckpointKind, JobStatus, LabelJob, TrainingRun, Vote
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.dataset import take_snapshot
from rlhf.services.votes import record_vote
from rlhf.services.vote_kinds import machine_vote
from rlhf.training.calibration import MIN_HELDOUT
from tests import factories
from tests.browser.conftest import DESKTOP, PASSWORD, login, screenshot

pytestmark = pytest.mark.integration


def _reward_model_with_heldout_votes(s, reward_dir) -> int:
    """A reward model whose run froze people's votes and held all of them out: the calibration set.

    The person agrees with the model on most pairs, so calibration finds its margins informative.
    """
    from rlhf.training.scoring import load_reward_model, score_conversations

    voter = factories.user(s, name="vic", password=PASSWORD)
    pairs = [(f"Please, {i}.", f"No {i}.") for i in range(MIN_HELDOUT + 4)]
    held = factories.comparisons(s, pairs)
    model, tokenizer = load_reward_model(str(reward_dir))
    scores = score_conversations(model, tokenizer, [[{"role": "user", "content": f"question {i}"},
                                                     {"role": "assistant", "content": t}]
                                                    for i, pair in enumerate(pairs) for t in pair])
    for i, comp in enumerate(held):
        agree = i % 6 != 0  # one in six the other way: a confident model, not a certain one
        prefers_a = scores[2 * i] > scores[2 * i + 1]
        record_vote(session=s, rater=voter, comparison_id=comp.id, choice="a" if prefers_a == agree else "b",
                    as_shown=False)
    run = TrainingRun(algorithm="reward", status=JobStatus.succeeded,
                      snapshot=take_snapshot(session=s).model_dump(mode="json"))
    s.add(run)
    s.flush()
    reward = register_checkpoint(session=s, path=str(reward_dir), name="rm-seeded", kind=CheckpointKind.reward,
                                 run_id=run.id, metrics={"heldout_comparison_ids": [c.id for c in held]})
    s.commit()
    return reward.id


def test_engineer_labels_open_pairs_from_the_console(server, new_page, reward_dir):
    with server.session() as s:
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        reward_id = _reward_model_with_heldout_votes(s, reward_dir)
        open_pairs = factories.comparisons(s, [(f"Sure, please {i}.", f"Go away {i}.") for i in range(6)],
                                           target_votes=2, checkpoint_path="org/other")
        s.commit()

    page = new_page(DESKTOP)
    login(page, server, "erin")
    page.locator("#console-stats").wait_for()
    page.get_by_text("Machine labels", exact=True).click()
    reward = page.locator("#label-reward input")
    expect(reward).to_have_value(f"#{reward_id} rm-seeded")

    # At 0.5 a coin flip would qualify: refused, and no job is stored.
    confidence = page.locator("#label-min-confidence input")
    confidence.fill("0.5")
    page.get_by_role("button", name="Label the pairs it is sure of").click()
    expect(page.locator("#label-status")).to_contain_text("strictly between 0.5 and 1")
    with server.session() as s:
        assert s.exec(select(LabelJob)).all() == []

    confidence.fill("0.8")
    page.get_by_role("button", name="Label the pairs it is sure of").click()
    expect(page.locator("#label-status")).to_contain_text("Label job #1: queued")
    # The embedded worker runs it; Refresh shows the outcome.
    status = page.locator("#label-status")
    for _ in range(120):
        page.locator("#label-refresh").click()
        page.wait_for_timeout(500)
        if re.search(r"succeeded|failed", status.inner_text()):
            break
    text = status.inner_text()
    screenshot(page, "console-machine-labels")
    assert "succeeded" in text, f"{text}\n{server.log_tail()}"
    with server.session() as s:
        job = s.exec(select(LabelJob)).one()
        labelled = s.exec(select(Vote).where(machine_vote())).all()
    r = job.result
    assert job.reward_checkpoint_id == reward_id and job.min_confidence == 0.8
    assert r["scored"] == len(open_pairs) and r["labelled"] == len(labelled)
    assert 0 < r["labelled"] < len(open_pairs), r  # the threshold decides: some pairs are left to people
    assert {v.comparison_id for v in labelled} <= {c.id for c in open_pairs}
    assert all(v.label_p >= 0.8 for v in labelled)
    assert (f"Labelled {r['labelled']} of {len(open_pairs)} open pairs at p ≥ 0.8; "
            f"{r['left_for_people']} go to people first.") in text
    assert f"Calibration on {MIN_HELDOUT + 4} held-out human pairs" in text
