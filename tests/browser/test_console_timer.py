"""The Console refreshes itself while it is shown, and only then: an engineer's page lands on
the Console with its timer running, and leaving for another tab stops it. Its counts follow the
votes without a click, within their refresh bound."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from feedback_ui.ui.console import COUNTS_MAX_AGE_S, REFRESH_S
from rlhf.services.votes import record_vote
from tests import factories
from tests.browser.conftest import DESKTOP, PASSWORD, login

pytestmark = pytest.mark.integration


def _events(page, seconds: float) -> int:
    """Events the page sends to the server's queue over ``seconds`` (a timer tick is two)."""
    sent = []
    listener = lambda request: sent.append(1) if "/queue/join" in request.url else None  # noqa: E731
    page.on("request", listener)
    page.wait_for_timeout(seconds * 1000)
    page.remove_listener("request", listener)
    return len(sent)


def test_the_console_timer_runs_on_the_console_and_stops_elsewhere(server, new_page):
    with server.session() as s:
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        factories.comparisons(s, [("a", "b")])
    page = new_page(DESKTOP)
    login(page, server, "erin")
    page.locator("#console-stats").wait_for()
    page.wait_for_function("window.rlLanded === true")
    # Landed on the Console, however late the first tab's select of the page load arrived.
    assert _events(page, 4 * REFRESH_S) >= 4

    page.get_by_role("tab", name="Leaderboard").click()
    page.wait_for_timeout(2 * REFRESH_S * 1000)  # what was already in flight settles
    assert _events(page, 3 * REFRESH_S) == 0

    page.get_by_role("tab", name="Console").click()
    assert _events(page, 4 * REFRESH_S) >= 4


def test_the_console_counts_show_a_new_vote_without_a_click(server, new_page):
    with server.session() as s:
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        comp = factories.comparisons(s, [("a", "b")])[0]
    page = new_page(DESKTOP)
    login(page, server, "erin")
    votes = page.locator("#console-stats .rl-stat").filter(has_text="Votes").locator("strong")
    expect(votes).to_have_text("0")

    with server.session() as s:
        rita = factories.user(s, name="rita", role="rater", password=PASSWORD)
        record_vote(session=s, rater=rita, comparison_id=comp.id, choice="a", as_shown=False)
    # The counts are at most COUNTS_MAX_AGE_S old and the timer shows them on its next tick; the
    # wait allows many times that for a busy machine.
    expect(votes).to_have_text("1", timeout=10 * 1000 * (COUNTS_MAX_AGE_S + REFRESH_S))
