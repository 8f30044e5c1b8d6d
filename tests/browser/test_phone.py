"""On a phone: the whole leaderboard without sideways scrolling, and no key badges on a touch screen."""

from __future__ import annotations

import pytest

from rlhf.services.leaderboard import leaderboard
from tests import factories
from tests.browser.conftest import CHROMIUM, PASSWORD, PHONE, login
from tests.unit.test_leaderboard import _duel

pytestmark = pytest.mark.integration
LAPTOP = {"width": 1366, "height": 850}
COLUMNS = ["Rank", "Checkpoint", "Status", "Rating", "95% interval", "Votes", "Wins", "Losses", "Ties"]


def test_leaderboard_shows_every_column_on_a_phone_and_whole_words_on_a_laptop(server, new_page):
    with server.session() as s:
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        _duel(s, ["a"] * 3 + ["b"])
        s.commit()
        standings = leaderboard(session=s, bootstrap=20).standings
    for viewport in (PHONE, LAPTOP):
        page = new_page(viewport)
        login(page, server, "rita")
        page.get_by_role("tab", name="Leaderboard").click()
        page.get_by_text("votes between responses").wait_for()
        width = viewport["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        cells = page.locator("#leaderboard-table td")
        assert cells.count() == len(COLUMNS) * len(standings)
        for i in range(cells.count()):
            box = cells.nth(i).bounding_box()
            assert box["width"] > 0 and box["x"] >= 0 and box["x"] + box["width"] <= width, (viewport, i, box)
        if viewport is PHONE:
            labels = cells.evaluate_all("cs => cs.map(c => getComputedStyle(c, '::before').content)")
            assert labels[: len(COLUMNS)] == [f'"{c}"' for c in COLUMNS]
        else:
            for header in page.locator("#leaderboard-table th").all():
                # One line per header: nothing split inside a word.
                assert header.evaluate("h => h.getClientRects().length === 1 && h.scrollWidth <= h.clientWidth + 1")
        assert standings[0].name in page.locator("#leaderboard-table").inner_text()


def test_key_badges_and_hint_are_not_shown_on_a_touch_screen(server, browser):
    with server.session() as s:
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        factories.comparisons(s, [("a", "b")])
    assert CHROMIUM
    contexts = [
        browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True),
        browser.new_context(viewport=LAPTOP),
    ]
    try:
        shown = []
        for context in contexts:
            page = context.new_page()
            login(page, server, "rita")
            button = page.get_by_role("button", name="A is better")
            button.wait_for()
            shown.append(button.evaluate("b => getComputedStyle(b, '::after').content"))
        assert shown == ["none", '"1"']
    finally:
        for context in contexts:
            context.close()
