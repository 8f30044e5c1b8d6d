"""The Console in a real browser: a DPO run started, watched and served; raters kept out by the server."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect
from sqlmodel import select

from rlhf.models import Checkpoint, CheckpointStatus, JobStatus, Prompt, RunLog, TrainingRun, User
from rlhf.services.checkpoints import serve_checkpoint
from rlhf.services.simulate import simulate
from rlhf.services.votes import record_vote
from tests import factories
from tests.browser.conftest import DESKTOP, PASSWORD, call_event, login, screenshot

pytestmark = pytest.mark.integration


def _pick(page, label: str, option: str) -> None:
    """Choose in a Gradio dropdown: open it, click the option."""
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=False).first.click()


@pytest.mark.slow
def test_engineer_trains_dpo_watches_it_and_serves_the_result(server, new_page, tiny_model_dir):
    with server.session() as s:
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        comps = factories.comparisons(
            s, [(f"please answer {i}", f"answer {i}") for i in range(8)], checkpoint_path=str(tiny_model_dir)
        )
        base = s.exec(select(Checkpoint)).one()
        serve_checkpoint(session=s, checkpoint_id=base.id)
        s.commit()
        assert simulate(session=s, rule="contains:please")["votes"] == len(comps)

    page = new_page(DESKTOP)
    login(page, server, "erin")
    page.get_by_role("tab", name="Console").click()
    page.locator("#console-stats").get_by_text("Votes").wait_for()
    page.get_by_label("Steps", exact=True).fill("5")
    page.get_by_label("Extra parameters (KEY=VALUE, one per line)").fill("learning_rate=1e-4\nbatch_size=4")
    page.get_by_role("button", name="Start run").click()
    page.get_by_text("Run #1 (dpo) queued on 8 votes.").wait_for()

    # Watch it live: the timer refreshes the detail line until the run has finished.
    detail = page.locator("#run-detail")
    seen, deadline = set(), time.monotonic() + 420
    while time.monotonic() < deadline:
        text = detail.inner_text() if detail.count() else ""
        seen |= {status for status in ("queued", "running", "succeeded", "failed") if f"· {status}" in text}
        if "succeeded" in seen or "failed" in seen:
            break
        page.wait_for_timeout(300)
    assert "succeeded" in seen, f"statuses seen: {seen}; detail: {detail.inner_text()}\n{server.log_tail()}"
    assert "running" in seen, f"the page never showed the run in progress: {seen}"
    assert "step 5/5" in detail.inner_text()
    screenshot(page, "console-after-run")
    expect(page.locator("#runs-table")).to_contain_text("succeeded")
    expect(page.locator("#runs-table")).to_contain_text("5/5")

    with server.session() as s:
        run = s.get(TrainingRun, 1)
        assert run.status is JobStatus.succeeded and run.output_checkpoint_id
        new = s.get(Checkpoint, run.output_checkpoint_id)
        assert new.parent_id == base.id and new.status is CheckpointStatus.available
        assert s.exec(select(RunLog).where(RunLog.run_id == run.id)).first() is not None

    # The registry shows the new checkpoint with its parent; serving it is one click.
    expect(page.locator("#checkpoints-table")).to_contain_text(new.name)
    _pick(page, "Checkpoint", f"#{new.id} {new.name}")
    page.get_by_text(f"Lineage: #{new.id} {new.name}").wait_for()
    page.get_by_role("button", name="Serve", exact=True).click()
    page.get_by_text(f"#{new.id} {new.name} is now serving.").wait_for()
    with server.session() as s:
        assert s.get(Checkpoint, new.id).status is CheckpointStatus.serving
    expect(page.locator("#checkpoints-table")).to_contain_text(
        re.compile(rf"{re.escape(new.name)}\s+policy\s+serving"), use_inner_text=True
    )


def test_raters_cannot_use_the_console_even_by_hand(server, new_page):
    with server.session() as s:
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        factories.comparisons(s, [("left", "right")])

    rater = new_page(DESKTOP)
    login(rater, server, "rita")
    rater.get_by_role("button", name="A is better").wait_for()
    rater.get_by_role("tab", name="Leaderboard").wait_for()
    assert rater.get_by_role("tab", name="Console").count() == 0
    rater.get_by_role("tab", name="Leaderboard").click()
    expect(rater.locator("#leaderboard-table")).to_contain_text("ck-org/some-model")

    # The console's events exist in the page config; sent by hand, the server refuses them.
    answer = call_event(server, rater.context.cookies(), "Start run", ["dpo", 0, 0, "5", "", False, "human"])
    assert answer["success"] is False
    assert "engineer role" in str(answer["output"]), answer
    with server.session() as s:
        assert s.exec(select(TrainingRun)).first() is None

    # Users are for admins: an engineer is refused the same way.
    engineer = new_page(DESKTOP)
    login(engineer, server, "erin")
    engineer.get_by_role("tab", name="Console").click()
    engineer.locator("#console-stats").wait_for()
    assert not engineer.get_by_text("Users (admins only)").is_visible()
    answer = call_event(server, engineer.context.cookies(), "Add user", ["mallory", "admin", "long-enough-pw"])
    assert answer["success"] is False and "admin role" in str(answer["output"]), answer
    with server.session() as s:
        assert s.exec(select(User).where(User.name == "mallory")).first() is None

    rater.get_by_role("button", name="Log out", exact=True).click()
    rater.wait_for_url("**/login")
    rater.goto(f"{server.base_url}/")
    rater.wait_for_url("**/login?next=/")


def _pick_file(page, upload, path: Path) -> None:
    """Pick a file and wait for the picker to show its name.

    On a loaded machine a file set while Gradio redraws the picker is sometimes not taken (the
    picker stays empty); a person picks it again, and so does this.
    """
    taken = (
        "() => { const box = document.querySelector('#prompt-upload');"
        f" return box.textContent.includes({path.name!r}) || !box.querySelector('input[type=file]'); }}"
    )
    upload.set_input_files(str(path))
    try:
        page.wait_for_function(taken, timeout=8000)
    except PlaywrightTimeout:
        upload.set_input_files(str(path))
        page.wait_for_function(taken)
    expect(page.locator("#prompt-upload")).to_contain_text(path.name.split(".")[0])


def test_engineer_imports_prompts_and_writes_guidelines_raters_read(server, new_page, tmp_path):
    with server.session() as s:
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        rita = factories.user(s, name="voter", role="rater", password=PASSWORD)
        comp = factories.comparisons(s, [("left", "right")])[0]  # one prompt already there, with a vote
        record_vote(session=s, rater=rita, comparison_id=comp.id, choice="b", as_shown=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": \n')
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "one"}\n{"prompt": "two", "id": "p2"}\n')

    page = new_page(DESKTOP)
    login(page, server, "erin")
    page.get_by_role("tab", name="Console").click()
    # Once the page has landed on the Console (its counts drawn): a file picked before the load's
    # own switch to this tab would be dropped when the tab is drawn again.
    page.locator("#console-stats").get_by_text("Prompts").wait_for()
    upload = page.locator("#prompt-upload input[type=file]")
    _pick_file(page, upload, bad)
    page.get_by_role("button", name="Import prompts").click()
    page.get_by_role("alert").filter(has_text="bad.jsonl line 2: invalid JSON").wait_for()
    with server.session() as s:
        assert len(s.exec(select(Prompt)).all()) == 1, "a bad file imports nothing"

    # The refused file stays picked (as a refused gold file does); clear it to pick the corrected one.
    page.locator("#prompt-upload").get_by_role("button", name="Clear").click()
    # The picker is drawn anew once the refused file is gone; a file set before that would be lost.
    page.wait_for_function("() => !document.querySelector('#prompt-upload').textContent.includes('bad.jsonl')")
    _pick_file(page, upload, good)
    page.get_by_role("button", name="Import prompts").click()
    page.get_by_text("Imported 2 prompts.").wait_for()
    with server.session() as s:
        assert len(s.exec(select(Prompt)).all()) == 3

    page.get_by_text("Export and guidelines").click()
    page.get_by_role("button", name="Export preferences (JSONL)").click()
    page.get_by_text("1 preference rows exported.").wait_for()
    with page.expect_download() as download:
        page.locator("#export-file a").first.click()
    row = json.loads(Path(download.value.path()).read_text())
    assert row["chosen"] == [{"role": "assistant", "content": "right"}]

    page.get_by_label("Rater guidelines (Markdown)").fill("Prefer **polite** answers. <script>window.__xss=1</script>")
    page.get_by_role("button", name="Save guidelines").click()
    page.get_by_text("Guidelines saved").wait_for()

    rater = new_page(DESKTOP)
    login(rater, server, "rita")
    rater.get_by_text("Guidelines", exact=True).click()
    guidelines = rater.locator("#rate-guidelines")
    expect(guidelines).to_contain_text("Prefer polite answers. <script>window.__xss=1</script>")
    assert guidelines.locator("strong").inner_text() == "polite"
    assert rater.evaluate("typeof window.__xss") == "undefined"
