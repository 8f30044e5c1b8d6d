"""A browser through nginx in front of two web processes: Rate, Arena (streamed) and Console work.

Gradio's queue and event streams live in one process; these pass only when the proxy keeps
each browser on the process that holds its page (the session cookie's hash).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlmodel import select

from rlhf.models import Choice, Vote
from rlhf.services.checkpoints import register_checkpoint
from tests import factories
from tests.browser.conftest import DESKTOP, login
from tests.replicas.conftest import PASSWORD

pytestmark = pytest.mark.integration


def test_rate_arena_and_console_through_the_proxy(fresh, new_page):
    with fresh.session() as s:
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        factories.comparisons(s, [("left answer", "right answer")])
        register_checkpoint(session=s, path="org/model-one", name="one", serve=True)
        register_checkpoint(session=s, path="org/model-two", name="two", serve=True)

    rater = new_page(DESKTOP)
    login(rater, fresh, "rita")
    rater.get_by_role("button", name="A is better").click()
    expect(rater.locator("#rate-progress")).to_contain_text("Your votes: 1")
    with fresh.session() as s:
        votes = s.exec(select(Vote)).all()
    # Stored in the pair's own order: the rater may have been shown it the other way round.
    assert [v.choice.swapped() if v.shown_swapped else v.choice for v in votes] == [Choice.a]

    rater.get_by_role("tab", name="Arena").click()
    rater.locator("#arena-prompt textarea").fill("Tell me about the sea.")
    rater.locator("#arena-send").click()
    rater.locator("#arena-vote-a").wait_for(state="visible", timeout=60_000)
    for side in ("a", "b"):
        text = rater.locator(f"#arena-{side} .rl-card-body").inner_text()
        assert text.startswith("This is an answer from model-"), text

    engineer = new_page(DESKTOP)
    login(engineer, fresh, "erin")
    engineer.get_by_role("tab", name="Console").click()
    votes_cell = engineer.locator("#console-stats .rl-stat", has_text="Votes")
    votes_cell.wait_for()
    assert votes_cell.locator("strong").inner_text() == "1"
