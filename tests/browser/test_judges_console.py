"""The Console's AI-judges section in a real browser: an admin registers a judge and runs it, the
server's worker asks the judge, and the audit shows its votes against people's; only admins register."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect
from sqlmodel import col, select

from rlhf.models import Choice, JobStatus, Judge, JudgeJob, Vote, VoteKind
from rlhf.services.judge_audit import audit
from rlhf.services.judges import get_judge
from rlhf.services.simulate import simulate
from rlhf.services.vote_kinds import PEOPLE
from rlhf.services.votes import record_vote
from rlhf.settings import Settings
from tests import factories
from tests.browser.conftest import DESKTOP, PASSWORD, call_event, login, screenshot
from tests.judge_server import JudgeServer

pytestmark = pytest.mark.integration

PAIRS = 10
SIMULATED = 5  # pairs simulated raters decide by the judge's own rule


def _pairs() -> list[tuple[str, str]]:
    """Each pair has one answer that says "please", on the left or the right."""
    return [
        (f"Please, here is answer {i}.", f"Answer {i}.") if i % 2 else (f"Answer {i}.", f"Here it is {i}, please.")
        for i in range(PAIRS)
    ]


def _open_judges(page) -> None:
    page.get_by_role("tab", name="Console").click()
    page.locator("#console-stats").get_by_text("Votes").wait_for()
    page.get_by_text("AI judges", exact=True).click()
    page.locator("#judge-run").wait_for()


def _fill(page, elem_id: str, text: str) -> None:
    page.locator(f"#{elem_id}").get_by_role("textbox").fill(text)


def _audit_rows(page) -> dict[str, str]:
    return page.locator("#judge-audit table.judge-audit").evaluate(
        "t => Object.fromEntries([...t.rows].map(r => [r.cells[0].innerText, r.cells[1].innerText]))"
    )


def test_admin_registers_a_judge_runs_it_and_reads_its_audit(server, new_page):
    with server.session() as s:
        factories.user(s, name="ada", role="admin", password=PASSWORD)
        person = factories.user(s, name="pat", role="rater", password=PASSWORD)
        comps = factories.comparisons(s, _pairs())
        assert simulate(session=s, rule="contains:please", limit=SIMULATED)["votes"] == SIMULATED
        # One person against the rule ("please" is in answer a here) on a pair nobody else voted on.
        record_vote(session=s, rater=person, comparison_id=comps[-1].id, choice=Choice.b, as_shown=False)
        s.commit()

    with JudgeServer(noise=0.3, seed=3) as judge_server:
        page = new_page(DESKTOP)
        login(page, server, "ada")
        _open_judges(page)
        page.get_by_text("Register a judge (admins)").click()
        _fill(page, "judge-name", "polite-judge")
        _fill(page, "judge-url", judge_server.url)
        _fill(page, "judge-model", "judge")
        page.locator("#judge-add").click()
        expect(page.locator("#judge-added")).to_contain_text("Registered judge polite-judge (#1).")
        # The new judge is picked, and its (empty) audit is shown.
        expect(page.locator("#judge-pick input")).to_have_value("polite-judge (#1)")
        expect(page.locator("#judge-audit table.judge-audit")).to_contain_text("Votes")
        assert _audit_rows(page)["Votes"] == "0"

        page.locator("#judge-run").click()
        expect(page.locator("#judge-status")).to_contain_text("Judge job #1: queued.")

        status = page.locator("#judge-status")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            page.locator("#judge-refresh").click()
            page.wait_for_timeout(1000)
            text = status.inner_text()
            if "succeeded" in text or "failed" in text:
                break
        text = status.inner_text()
        assert "Judge job #1: succeeded." in text, f"{text}\n{server.log_tail()}"
        # Both orders of every pair were asked.
        assert judge_server.answered == 2 * PAIRS
    screenshot(page, "console-judge-audit")

    with server.session() as s:
        judge = s.exec(select(Judge)).one()
        assert judge.name == "polite-judge" and judge.url == judge_server.url and judge.swap
        job = s.get(JudgeJob, 1)
        assert job.status is JobStatus.succeeded
        assert f"Judged {PAIRS} pairs: {job.result['voted']} voted" in text
        judge_votes = {
            v.comparison_id: v.choice
            for v in s.exec(select(Vote).where(Vote.rater_id == judge.user_id, Vote.kind == VoteKind.judge))
        }
        people = {
            v.comparison_id: v.choice
            for v in s.exec(select(Vote).where(col(Vote.kind).in_(PEOPLE)))
            if v.choice in (Choice.a, Choice.b, Choice.tie)
        }
        overlap = set(judge_votes) & set(people)
        agreeing = sum(judge_votes[c] == people[c] for c in overlap)
        report = audit(
            session=s, judge=get_judge(session=s, judge="polite-judge"), min_overlap=Settings().judge_min_overlap
        )
    # The noise is the same in both orders: every pair gets a vote, and people voted on six of them.
    assert len(judge_votes) == job.result["voted"] == PAIRS
    assert len(overlap) == SIMULATED + 1
    assert 0 < agreeing < len(overlap), "the noisy judge should agree with people on some pairs, not all"
    assert report["votes"] == len(judge_votes) and report["overlap"] == len(overlap)

    rows = _audit_rows(page)
    assert rows["Votes"] == str(len(judge_votes))
    assert rows["Pairs voted by both people and the judge"] == str(len(overlap))
    assert rows["Agreement with people's majority"] == f"{agreeing / len(overlap):.3f} ({len(overlap)} pairs)"
    assert rows["Position consistency (same verdict in both orders)"] == f"1.000 ({PAIRS} pairs)"
    # Below the overlap a judge needs, its votes do not train, and the page says why.
    assert rows["label_p"].startswith(f"none: only {len(overlap)} pairs voted by both people and the judge")


def test_only_admins_register_judges(server, new_page):
    with server.session() as s:
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        factories.user(s, name="rita", role="rater", password=PASSWORD)

    engineer = new_page(DESKTOP)
    login(engineer, server, "erin")
    _open_judges(engineer)
    engineer.get_by_text("Register a judge (admins)").click()
    _fill(engineer, "judge-name", "sneaky")
    _fill(engineer, "judge-url", "http://127.0.0.1:9/v1")
    _fill(engineer, "judge-model", "judge")
    engineer.locator("#judge-add").click()
    refusal = "This needs the admin role or higher; you are a engineer."
    engineer.get_by_test_id("toast-body").filter(has_text=refusal).wait_for()
    expect(engineer.locator("#judge-added")).not_to_contain_text("Registered")

    # A rater has no Console, and the section's events sent by hand are refused by the server.
    rater = new_page(DESKTOP)
    login(rater, server, "rita")
    rater.get_by_role("tab", name="Leaderboard").wait_for()
    assert rater.get_by_role("tab", name="Console").count() == 0
    answer = call_event(server, rater.context.cookies(), "Register", ["sneaky", "http://127.0.0.1:9/v1", "m", "", True])
    assert answer["success"] is False and "admin role" in str(answer["output"]), answer
    with server.session() as s:
        assert s.exec(select(Judge)).first() is None
