"""What the Console tells an engineer: errors that stay, a run's results and phase, retiring safely."""

from __future__ import annotations

import pytest
from sqlmodel import select

from rlhf.models import Checkpoint, CheckpointStatus, JobStatus, TrainingRun
from rlhf.services.checkpoints import register_checkpoint
from rlhf.services.run_data import build_snapshot
from rlhf.services.runs import create_run
from rlhf.services.votes import record_vote
from tests import factories
from tests.browser.conftest import PASSWORD, login
from tests.browser.test_console import _pick, _pick_file

pytestmark = pytest.mark.integration
LAPTOP = {"width": 1366, "height": 850}


def _world(server):
    """A finished DPO run whose output serves (the only serving policy), and a run that is evaluating."""
    with server.session() as s:
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        voter = factories.user(s, name="voter", role="rater", password=PASSWORD)
        comps = factories.comparisons(s, [("left 1", "right 1"), ("left 2", "right 2")], serve=True)
        for comp in comps:
            record_vote(session=s, rater=voter, comparison_id=comp.id, choice="a", as_shown=False)
        done = create_run(session=s, algorithm="dpo")
        evaluating = create_run(session=s, algorithm="dpo")
        build_snapshot(session=s, run=done)
        base = s.exec(select(Checkpoint)).one()
        out = register_checkpoint(
            session=s, path="org/trained", name="dpo-run1", serve=True, parent_id=base.id, run_id=done.id
        )
        base.status = CheckpointStatus.retired
        done.status, done.output_checkpoint_id = JobStatus.succeeded, out.id
        done.metrics = {
            "final_loss": 0.41,
            "eval/kl_to_parent": 0.123,
            "eval/response_tokens": 17.5,
            "eval/samples": 64,
        }
        evaluating.status = JobStatus.running
        evaluating.progress = {"step": 50, "max_steps": 50, "phase": "evaluating"}
        s.add_all([base, done, evaluating])
        s.commit()
        return done.id, done.snapshot_hash, evaluating.id, out.id


def test_console_keeps_errors_shows_results_and_guards_the_last_policy(server, new_page, tmp_path):
    done_id, snapshot_hash, evaluating_id, out_id = _world(server)
    page = new_page(LAPTOP)
    login(page, server, "erin")
    page.locator("#console-stats").wait_for()

    # An error stays until the next action, through the console's refreshes.
    page.get_by_label("Prompts", exact=True).fill("abc")
    page.get_by_role("button", name="Start generation").click()
    error = page.locator("#generation-status").get_by_role("alert")
    error.filter(has_text="prompts must be a whole number").wait_for()
    page.wait_for_timeout(5000)  # more than two refreshes
    assert error.is_visible()

    # The newest run is evaluating; the finished one shows its evaluation, its data and what serves.
    detail = page.locator("#run-detail")
    detail.filter(has_text="evaluating the new checkpoint").wait_for()
    _pick(page, "Watch run", f"#{done_id} dpo")
    detail.filter(has_text="is now serving").wait_for()
    text = detail.inner_text()
    assert "kl to parent" in text and "0.123" in text and "response tokens" in text
    assert snapshot_hash in text and "2 rows from 2 votes" in text

    # Web wording: fields, not command-line flags.
    page.get_by_label("Extra parameters (KEY=VALUE, one per line)").fill("not a pair")
    page.get_by_role("button", name="Start run").click()
    wording = page.get_by_role("alert").filter(has_text="a parameter setting is written KEY=VALUE")
    wording.wait_for()
    assert "--set" not in wording.inner_text() and "Extra parameters" in wording.inner_text()
    page.get_by_label("Extra parameters (KEY=VALUE, one per line)").fill("")
    _pick(page, "Algorithm", "ppo")
    page.get_by_role("button", name="Start run").click()
    needs = page.get_by_role("alert").filter(has_text="needs a reward model")
    needs.wait_for()
    assert "--reward-model" not in needs.inner_text() and "Reward model" in needs.inner_text()

    # The prompt limit is on the page; a refused file stays picked, and the error names every bad line.
    assert page.get_by_text("20,000 characters per prompt").count() == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": \n{"prompt": ""}\n')
    _pick_file(page, page.locator("#prompt-upload input[type=file]"), bad)
    page.get_by_role("button", name="Import prompts").click()
    refused = page.get_by_role("alert").filter(has_text="2 bad lines")
    refused.wait_for()
    assert "bad.jsonl line 2" in refused.inner_text() and "bad.jsonl line 3" in refused.inner_text()
    picker = page.locator("#prompt-upload")
    assert "bad.jsonl" in picker.inner_text().replace("\n", "")  # the name is drawn in two parts
    assert picker.get_by_role("button", name="Clear").count() == 1

    # The last serving policy is kept unless the engineer says so.
    _pick(page, "Checkpoint", f"#{out_id} dpo-run1")
    page.get_by_role("button", name="Retire", exact=True).click()
    kept = page.get_by_role("alert").filter(has_text="last serving policy")
    kept.wait_for()
    assert "Retire even the last serving policy" in kept.inner_text()
    with server.session() as s:
        assert s.get(Checkpoint, out_id).status is CheckpointStatus.serving
    page.get_by_label("Retire even the last serving policy").check()
    page.get_by_role("button", name="Retire", exact=True).click()
    page.get_by_text("is now retired").wait_for()
    with server.session() as s:
        assert s.get(Checkpoint, out_id).status is CheckpointStatus.retired
        assert s.get(TrainingRun, evaluating_id).status is JobStatus.running
