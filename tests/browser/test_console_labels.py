"""The Console's machine-label section in a real browser: a bad threshold is refused with the reason,
a good one queues a label job that the server's worker runs, and the page reports what it did.

The outcome is fixed in advance, whatever the reward model's weights (they come from a seeded head on
the tiny model, whose SFT warm-up differs with thread count and BLAS): every held-out row and every
open pair is on one prompt, and uses the two answers the model scores furthest apart. Held-out rows
then all share one margin m, so temperature scaling has a closed form: with k of n votes for the
answer the model prefers, the fitted scale makes σ(scale·|m|) = k/n. Here k/n = 20/24 = 5/6, so an
open pair with the same two answers has calibrated p = 5/6, between the thresholds 0.8 and 0.9; a pair
whose two answers are the same text has margin 0 and p = ½, never labelled.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from rlhf.models import CheckpointKind, Choice, JobStatus, LabelJob, TrainingRun, Vote
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.dataset import take_snapshot
from rlhf.services.vote_kinds import machine_vote
from rlhf.services.votes import record_vote
from rlhf.training.calibration import MIN_HELDOUT
from tests import factories
from tests.browser.conftest import DESKTOP, PASSWORD, login, screenshot

pytestmark = pytest.mark.integration

QUESTION = [{"role": "user", "content": "Can you help me?"}]
CANDIDATES = ["Sure, please ask.", "Go away.", "Indeed, it is sunny.", "No.", "Thank you, I will help."]
HELDOUT = MIN_HELDOUT + 4
AGREE = 20  # votes for the answer the model prefers; the other 4 go the other way
SURE = AGREE / HELDOUT  # the calibrated p of a pair with the held-out rows' two answers: 5/6


def _comparisons_on_one_prompt(s, pairs, checkpoint_path, target_votes=1):
    """One comparison per (text a, text b), each on its own prompt row, every prompt the same question."""
    return factories.comparisons(
        s, pairs, target_votes=target_votes, checkpoint_path=checkpoint_path, messages=QUESTION
    )


def _preferred_and_other(reward_dir) -> tuple[str, str]:
    """(the answer the reward model prefers, the other) of the two candidates it scores furthest apart."""
    from rlhf.training.scoring import load_reward_model, score_conversations

    model, tokenizer = load_reward_model(str(reward_dir))
    scores = score_conversations(
        model, tokenizer, [QUESTION + [{"role": "assistant", "content": t}] for t in CANDIDATES]
    )
    ranked = sorted(zip(scores, CANDIDATES))
    (low, worst), (high, best) = ranked[0], ranked[-1]
    # A seeded head on any warm-up tells these apart by far more than float noise, and by far less than
    # the margins at which σ rounds to 1 (its scores are O(0.1)).
    assert 1e-3 < high - low < 20, ranked
    return best, worst


def _reward_model_with_heldout_votes(s, reward_dir, good: str, bad: str) -> int:
    """A reward model whose run froze people's votes and held all of them out: the calibration set.

    Every held-out row is the pair (good, bad) on the same question, shown either way round; the
    person picks ``good``, the model's choice, on AGREE of them: a confident model, not a certain one.
    """
    voter = factories.user(s, name="vic", password=PASSWORD)
    held = _comparisons_on_one_prompt(
        s, [(good, bad) if i % 2 else (bad, good) for i in range(HELDOUT)], "org/some-model"
    )
    for i, comp in enumerate(held):
        agree = i % 6 != 0
        good_is_a = i % 2 == 1
        record_vote(
            session=s, rater=voter, comparison_id=comp.id, choice="a" if good_is_a == agree else "b", as_shown=False
        )
    assert sum(i % 6 != 0 for i in range(HELDOUT)) == AGREE
    run = TrainingRun(
        algorithm="reward", status=JobStatus.succeeded, snapshot=take_snapshot(session=s).model_dump(mode="json")
    )
    s.add(run)
    s.flush()
    reward = register_checkpoint(
        session=s,
        path=str(reward_dir),
        name="rm-seeded",
        kind=CheckpointKind.reward,
        run_id=run.id,
        metrics={"heldout_comparison_ids": [c.id for c in held]},
    )
    s.commit()
    return reward.id


def _run_label_job(page, threshold: float, job_number: int) -> str:
    """Submit a label job at ``threshold`` from the page, wait for the worker, return the page's report."""
    page.locator("#label-min-confidence input").fill(str(threshold))
    page.get_by_role("button", name="Label the pairs it is sure of").click()
    status = page.locator("#label-status")
    expect(status).to_contain_text(f"Label job #{job_number}: queued")
    # The embedded worker runs it; Refresh shows the outcome.
    for _ in range(120):
        page.locator("#label-refresh").click()
        page.wait_for_timeout(500)
        if re.search(r"succeeded|failed", status.inner_text()):
            break
    return status.inner_text()


def test_engineer_labels_open_pairs_from_the_console(server, new_page, reward_dir):
    good, bad = _preferred_and_other(reward_dir)
    with server.session() as s:
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        reward_id = _reward_model_with_heldout_votes(s, reward_dir, good, bad)
        # Three pairs the model is 5/6 sure of (either way round), three it cannot tell apart.
        sure = {0: Choice.a, 2: Choice.b, 5: Choice.a}
        open_pairs = _comparisons_on_one_prompt(
            s,
            [(good, bad), (bad, bad), (bad, good), (good, good), (CANDIDATES[2],) * 2, (good, bad)],
            "org/other",
            target_votes=2,
        )
        expected = {open_pairs[i].id: choice for i, choice in sure.items()}

    page = new_page(DESKTOP)
    login(page, server, "erin")
    page.locator("#console-stats").wait_for()
    page.get_by_text("Machine labels", exact=True).click()
    expect(page.locator("#label-reward input")).to_have_value(f"#{reward_id} rm-seeded")

    # At 0.5 a coin flip would qualify: refused, and no job is stored.
    page.locator("#label-min-confidence input").fill("0.5")
    page.get_by_role("button", name="Label the pairs it is sure of").click()
    expect(page.locator("#label-status")).to_contain_text("strictly between 0.5 and 1")
    with server.session() as s:
        assert s.exec(select(LabelJob)).all() == []

    # The threshold decides. At 0.9 the model is sure of nothing (p = 5/6 at best): every pair goes to people.
    text = _run_label_job(page, 0.9, 1)
    assert "succeeded" in text, f"{text}\n{server.log_tail()}"
    assert f"Labelled 0 of {len(open_pairs)} open pairs at p ≥ 0.9; {len(open_pairs)} go to people first." in text
    with server.session() as s:
        assert s.exec(select(Vote).where(machine_vote())).all() == []

    # At 0.8 it labels the three pairs it is 5/6 sure of, for the answer it prefers, and leaves the rest.
    text = _run_label_job(page, 0.8, 2)
    screenshot(page, "console-machine-labels")
    assert "succeeded" in text, f"{text}\n{server.log_tail()}"
    with server.session() as s:
        job = s.exec(select(LabelJob).where(LabelJob.id == 2)).one()
        labelled = s.exec(select(Vote).where(machine_vote())).all()
    r, cal = job.result, job.result["calibration"]
    assert job.reward_checkpoint_id == reward_id and job.min_confidence == 0.8
    assert cal["heldout"] == HELDOUT and cal["accuracy"] == pytest.approx(SURE, abs=1e-6)
    assert r["scored"] == len(open_pairs) and r["labelled"] == len(labelled) == len(sure)
    assert {v.comparison_id: v.choice for v in labelled} == expected
    assert all(v.label_p == pytest.approx(SURE, abs=1e-3) for v in labelled), [v.label_p for v in labelled]
    assert (
        f"Labelled {len(sure)} of {len(open_pairs)} open pairs at p ≥ 0.8; "
        f"{len(open_pairs) - len(sure)} go to people first."
    ) in text
    assert f"Calibration on {HELDOUT} held-out human pairs" in text
