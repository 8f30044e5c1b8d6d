"""The Rate tab in a real browser: voting by mouse and key, double clicks, escaping, phone size."""

from __future__ import annotations

import pytest
from sqlmodel import select

from rlhf.models import Choice, Comparison, Response, User, Vote
from tests import factories
from tests.browser.conftest import DESKTOP, PASSWORD, PHONE, login, screenshot

pytestmark = pytest.mark.integration
DOUBLE_CLICK_GUARD_S = 0.7  # a little over feedback_ui.ui.rate.DOUBLE_CLICK_S


def _seed(server, pairs, name="rita"):
    with server.session() as s:
        factories.user(s, name=name, role="rater", password=PASSWORD)
        return [c.id for c in factories.comparisons(s, pairs)]


def _shown(page) -> tuple[str, str]:
    cards = page.locator("#response-a .rl-card-body"), page.locator("#response-b .rl-card-body")
    return cards[0].inner_text(), cards[1].inner_text()


def _wait_for_new_pair(page, before: tuple[str, str]) -> None:
    page.wait_for_function(
        "([a, b]) => { const x = document.querySelector('#response-a .rl-card-body'); "
        "const y = document.querySelector('#response-b .rl-card-body'); "
        "return x && y && (x.innerText !== a || y.innerText !== b); }",
        arg=list(before),
    )


def _stored_votes(server, rater: str) -> list[tuple[Vote, str, str]]:
    """The rater's votes with the texts of the stored response_a / response_b."""
    with server.session() as s:
        user = s.exec(select(User).where(User.name == rater)).one()
        out = []
        for vote in s.exec(select(Vote).where(Vote.rater_id == user.id).order_by(Vote.id)):
            comp = s.get(Comparison, vote.comparison_id)
            out.append((vote, s.get(Response, comp.response_a_id).text, s.get(Response, comp.response_b_id).text))
        return out


def _preferred(vote: Vote, text_a: str, text_b: str) -> str | None:
    return {Choice.a: text_a, Choice.b: text_b}.get(vote.choice)


def test_rater_votes_by_mouse_key_and_double_click(server, new_page):
    pairs = [(f"left answer {i}", f"right answer {i}") for i in range(4)]
    _seed(server, pairs)
    page = new_page(DESKTOP)
    login(page, server, "rita")
    page.get_by_role("button", name="A is better").wait_for()
    assert page.locator("#rate-progress").inner_text().startswith("Your votes: 0")
    # The shortcuts are written on the buttons, the labels stay exact.
    for label, key in (("A is better", "1"), ("B is better", "2"), ("Tie", "3"), ("Both bad", "4")):
        button = page.get_by_role("button", name=label, exact=False)
        assert button.inner_text().strip() == label
        assert button.evaluate("e => getComputedStyle(e, '::after').content") == f'"{key}"'
        assert button.get_attribute("aria-keyshortcuts") == key
    screenshot(page, "rate-desktop")

    # 1. The mouse, with a rationale.
    first = _shown(page)
    page.get_by_label("Rationale (optional)").fill("clearer")
    page.get_by_role("button", name="A is better").click()
    _wait_for_new_pair(page, first)
    assert page.get_by_label("Rationale (optional)").input_value() == ""
    page.get_by_text("Your votes: 1").wait_for()

    # 2. A keyboard shortcut (after the double-click guard, as a reading person would be).
    second = _shown(page)
    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    page.locator("body").click(position={"x": 5, "y": 5})  # focus on the page, not in a text box
    page.keyboard.press("2")
    _wait_for_new_pair(page, second)
    page.get_by_text("Your votes: 2").wait_for()

    # 3. A double click stores one vote, and not a vote on the next pair.
    third = _shown(page)
    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    page.get_by_role("button", name="Tie").dblclick()
    _wait_for_new_pair(page, third)
    fourth = _shown(page)
    page.wait_for_timeout(1500)  # time for a stray second vote to arrive, if one were sent
    assert _shown(page) == fourth
    page.get_by_text("Your votes: 3").wait_for()

    votes = _stored_votes(server, "rita")
    assert len(votes) == 3
    (v1, a1, b1), (v2, a2, b2), (v3, a3, b3) = votes
    assert _preferred(v1, a1, b1) == first[0] and v1.rationale == "clearer"
    assert _preferred(v2, a2, b2) == second[1]
    assert v3.choice is Choice.tie and {a3, b3} == set(third)
    assert all(v.idempotency_key for v, _, _ in votes)

    # The last pair, then nothing left.
    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    page.get_by_role("button", name="Both bad").click()
    page.get_by_text("Nothing left to rate").wait_for()
    assert not page.get_by_role("button", name="A is better").is_visible()
    assert len(_stored_votes(server, "rita")) == 4


def test_responses_render_as_text_and_never_run(server, new_page):
    script = "<script>window.__xss=1</script> and **bold**"
    image = '<img src=x onerror="window.__xss=1"> and `code <b>`'
    code = "```python\nif a < b:\n    print('<i>x</i>')\n```"
    _seed(server, [(script, image), (code, "plain")])
    page = new_page(DESKTOP)
    login(page, server, "rita")
    page.get_by_role("button", name="A is better").wait_for()
    shown = " ".join(_shown(page))
    assert "<script>window.__xss=1</script>" in shown
    assert '<img src=x onerror="window.__xss=1">' in shown
    assert page.locator(".rl-card-body img, .rl-card-body script").count() == 0
    assert page.locator(".rl-card-body strong").first.inner_text() == "bold"  # Markdown still renders
    page.wait_for_timeout(500)
    assert page.evaluate("typeof window.__xss") == "undefined"

    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    before = _shown(page)
    page.get_by_role("button", name="Tie").click()
    _wait_for_new_pair(page, before)
    block = page.locator(".rl-card-body pre code")
    assert block.count() == 1 and "print('<i>x</i>')" in block.inner_text()
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_rate_tab_fits_a_phone(server, new_page):
    long = "\n\n".join(f"Paragraph {i}: " + "a fairly long sentence that goes on " * 10 for i in range(10))
    code = "```\n" + "x = 'a very long line of code that must scroll sideways inside its block' " * 3 + "\n```"
    _seed(server, [(long, code)])
    page = new_page(PHONE)
    login(page, server, "rita")
    page.get_by_role("button", name="A is better").wait_for()
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for label in ("A is better", "B is better", "Tie", "Both bad"):
        button = page.get_by_role("button", name=label)
        button.scroll_into_view_if_needed()
        assert button.is_visible()
        box = button.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (label, box)
    a, b = page.locator("#response-a").bounding_box(), page.locator("#response-b").bounding_box()
    assert b["y"] >= a["y"] + a["height"] - 1, "on a phone the responses stack"
    # Long text makes the page longer (one scroll area on a phone, not a card scrolling inside the
    # scrolling page); a long code line scrolls inside its block, so the page does not stretch sideways.
    prose = page.locator(".rl-card-body", has_text="Paragraph 9")
    assert prose.evaluate("e => e.scrollHeight <= e.clientHeight + 1")
    assert page.locator(".rl-card-body pre").evaluate("e => e.scrollWidth > e.clientWidth")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "rate-phone")
