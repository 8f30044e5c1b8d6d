"""The Rate tab beyond one vote: who holds a lease, the typing guard, long answers, undo and skip."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from rlhf.models import Assignment, Choice, Comparison, ComparisonStatus, Skip, User, Vote, utcnow
from rlhf.services.gold import mark_gold
from rlhf.services.votes import record_vote
from tests import factories
from tests.browser.conftest import PASSWORD, PHONE, login, screenshot
from tests.browser.test_rate import DOUBLE_CLICK_GUARD_S, _shown, _stored_votes, _wait_for_new_pair

pytestmark = pytest.mark.integration
LAPTOP = {"width": 1366, "height": 850}


def _live_leases(server, name: str) -> int:
    with server.session() as s:
        user = s.exec(select(User).where(User.name == name)).one()
        return s.exec(
            select(func.count())
            .select_from(Assignment)
            .where(Assignment.rater_id == user.id, Assignment.expires_at > utcnow())
        ).one()


def _eventually(check, timeout_s: float = 10.0, page=None) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def test_leases_follow_who_is_actually_rating(server, new_page):
    with server.session() as s:
        rita = factories.user(s, name="rita", role="rater", password=PASSWORD)
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        first, second, golden = factories.comparisons(s, [("a1", "b1"), ("a2", "b2"), ("g1", "g2")])
        mark_gold(session=s, comparison_id=golden.id, answer="a")
        s.commit()
        record_vote(session=s, rater=rita, comparison_id=golden.id, choice="a", as_shown=False)

    # An engineer who only opens the app lands on the Console and holds no pair.
    engineer = new_page(LAPTOP)
    login(engineer, server, "erin")
    engineer.locator("#console-stats").wait_for()
    assert engineer.get_by_role("tab", name="Console").get_attribute("aria-selected") == "true"
    engineer.wait_for_timeout(1000)
    assert _live_leases(server, "erin") == 0

    # The rater sees what she can still do: two pairs, not the answered gold one.
    rater = new_page(LAPTOP)
    login(rater, server, "rita")
    rater.get_by_role("button", name="A is better").wait_for()
    assert "left for you: 2" in rater.locator("#rate-progress").inner_text()

    # The engineer opens Rate: a lease; leaves it: the place is free again.
    # The tab keeps showing the pair it last had, so the lease is awaited, not the buttons.
    engineer.get_by_role("tab", name="Rate").click()
    engineer.get_by_role("button", name="A is better").wait_for()
    _eventually(lambda: _live_leases(server, "erin") == 1)
    engineer.get_by_role("tab", name="Leaderboard").click()
    _eventually(lambda: _live_leases(server, "erin") == 0)
    engineer.get_by_role("tab", name="Rate").click()
    _eventually(lambda: _live_leases(server, "erin") == 1)
    engineer.get_by_role("button", name="Log out", exact=True).click()
    engineer.wait_for_url("**/login**")
    assert _live_leases(server, "erin") == 0

    # Closing the page gives the rater's pair back too.
    assert _live_leases(server, "rita") == 1
    rater.close(run_before_unload=True)
    _eventually(lambda: _live_leases(server, "rita") == 0, timeout_s=20)


def test_typing_guard_hint_escape_submit_and_no_leaks(server, new_page):
    with server.session() as s:
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        factories.comparisons(s, [(f"left {i}", f"right {i}") for i in range(4)])
    page = new_page(LAPTOP)
    login(page, server, "rita")
    page.get_by_role("button", name="A is better").wait_for()
    box = page.get_by_label("Rationale (optional)")
    hint = page.locator("#rate-rationale .rl-guard-hint")

    # Typing a number types it; a hint says the shortcuts are off; Esc leaves the box.
    first = _shown(page)
    box.click()
    assert "Shortcuts are off while you type" in hint.inner_text()
    page.keyboard.type("1 is clearer")
    page.wait_for_timeout(500)
    assert _stored_votes(server, "rita") == []
    page.keyboard.press("Escape")
    assert page.evaluate("document.activeElement.tagName") != "TEXTAREA"
    assert not hint.is_visible()
    page.keyboard.press("1")
    _wait_for_new_pair(page, first)

    # Ctrl+Enter, then the choice, votes with what was typed; the key is not typed.
    second = _shown(page)
    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    box.click()
    page.keyboard.type("both fine")
    page.keyboard.press("Control+Enter")
    assert "Now press 1" in hint.inner_text()
    page.keyboard.press("3")
    _wait_for_new_pair(page, second)

    # Tab out of the box, then a shortcut: it votes, and nothing leaks into the text.
    third = _shown(page)
    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    box.click()
    page.keyboard.type("shorter")
    page.keyboard.press("Tab")
    page.keyboard.press("2")
    _wait_for_new_pair(page, third)

    votes = _stored_votes(server, "rita")
    assert [(v.rationale, v.choice is Choice.tie) for v, _, _ in votes] == [
        ("1 is clearer", False),
        ("both fine", True),
        ("shorter", False),
    ]
    (v1, a1, b1), _, (v3, a3, b3) = votes
    assert {Choice.a: a1, Choice.b: b1}[v1.choice] == first[0]
    assert {Choice.a: a3, Choice.b: b3}[v3.choice] == third[1]


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_long_answers_keep_the_choice_bar_in_reach(server, new_page, viewport):
    long = "\n\n".join(f"Paragraph {i}: " + "words that go on and on " * 25 for i in range(25))  # ~15,000 chars
    assert len(long) > 14_000
    with server.session() as s:
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        factories.comparisons(s, [(long, long[::-1]), ("short a", "short b")])
    page = new_page(viewport)
    login(page, server, "rita")
    button = page.get_by_role("button", name="B is better")
    button.wait_for()
    height = viewport["height"]

    def in_window(locator) -> bool:
        box = locator.bounding_box()
        return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height

    for y in (0, 2000, 6000):  # wherever the rater has scrolled to
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(150)
        for label in ("A is better", "B is better", "Tie", "Both bad"):
            assert in_window(page.get_by_role("button", name=label)), (label, y)
    if viewport is PHONE:
        # Stacked on a phone, the page is the one scroll area: the card does not scroll inside it.
        card = page.locator("#response-a .rl-card-body")
        assert card.evaluate("e => e.scrollHeight <= e.clientHeight + 1")
    screenshot(page, f"rate-long-{viewport['width']}")
    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    button.click()
    note = page.get_by_text("Vote recorded: B is better.")
    note.wait_for()
    assert in_window(note)


def test_vote_is_echoed_and_can_be_undone_or_skipped(server, new_page):
    with server.session() as s:
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        ids = [c.id for c in factories.comparisons(s, [("a1", "b1"), ("a2", "b2"), ("a3", "b3")])]
    page = new_page(LAPTOP)
    login(page, server, "rita")
    page.get_by_role("button", name="A is better").wait_for()
    first = _shown(page)
    page.get_by_role("button", name="Both bad").click()
    page.get_by_text("Vote recorded: Both bad.").wait_for()
    page.get_by_text("left for you: 2").wait_for()

    # Undo: the vote is gone, the pair is back as it was shown, and open again.
    page.get_by_role("button", name="Undo last vote").click()
    page.get_by_text("Vote taken back (Both bad)").wait_for()
    assert _shown(page) == first
    assert _stored_votes(server, "rita") == []
    with server.session() as s:
        comp = s.get(Comparison, ids[0])
        assert comp.status is ComparisonStatus.open and comp.vote_count == 0
    assert not page.get_by_role("button", name="Undo last vote").is_visible()

    # Skip: the next pair shows, the skip is stored, and the skipped pair does not come back.
    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    page.get_by_role("button", name="Skip this pair").click()
    page.get_by_text("Skipped").wait_for()
    assert _shown(page) != first
    with server.session() as s:
        assert s.exec(select(Skip.comparison_id)).all() == [ids[0]]
    before = _shown(page)
    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    page.get_by_role("button", name="Tie").click()
    _wait_for_new_pair(page, before)
    assert _shown(page) != first
    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    page.get_by_role("button", name="Tie").click()
    page.get_by_text("Nothing left to rate").wait_for()
    assert {v.comparison_id for v, _, _ in _stored_votes(server, "rita")} == set(ids[1:])
    with server.session() as s:
        assert s.exec(select(func.count()).select_from(Vote)).one() == 2
