"""Rankings on the Rate tab: a rater orders four answers with one tie (by keyboard on a desktop, by
tapping on a phone), takes the order back and gives it again; the database and the export then hold
what was meant. The app's time from the keystroke or tap that submits a judgement to the next item
on screen is printed for pairs and rankings (``-s`` shows it), for the benchmark to quote."""

from __future__ import annotations

import json

import pytest
from sqlmodel import col, select

from feedback_ui.ui.rate_ranking import order_text, parse_typed_order
from rlhf.errors import InvalidInput
from rlhf.models import Choice, Comparison, Response, User, Vote
from rlhf.services.dataset import export
from tests import factories
from tests.browser.conftest import DESKTOP, PASSWORD, PHONE, login, screenshot
from tests.browser.test_rate import DOUBLE_CLICK_GUARD_S

pytestmark = pytest.mark.integration
ANSWERS = ["Answer text alpha.", "Answer text bravo.", "Answer text charlie.", "Answer text delta."]
# What the rater means, by the answers' texts: charlie best, alpha and delta share second, bravo last.
MEANT = [[ANSWERS[2]], [ANSWERS[0], ANSWERS[3]], [ANSWERS[1]]]
PAIRS = [("pair left one", "pair right one"), ("pair left two", "pair right two")]

# The item on screen, as a signature that changes with every hand-out (a ranking's carries its
# hand-out key, so the same ranking handed back by undo is a new item too).
ITEM_JS = """() => {
  const shown = (sel) => { const e = document.querySelector(sel); return e && e.offsetParent !== null ? e : null; };
  const ranking = shown('#rate-ranking'), pair = shown('#rate-pair');
  if (ranking) {
    const answers = ranking.querySelector('[data-rl-handout]');
    return answers ? 'ranking:' + answers.dataset.rlHandout : null;
  }
  if (pair) {
    const texts = [...pair.querySelectorAll('.rl-card-body')].map((e) => e.innerText);
    return texts.length === 2 && texts.every((t) => t) ? 'pair:' + texts.join('|') : null;
  }
  return shown('#rate-empty') ? 'empty' : null;
}"""
# The time of the last key pressed or button clicked: the one that submitted the judgement.
CLOCK_JS = """() => {
  if (window.__rlClock) return;
  window.__rlClock = true;
  const stamp = () => { window.__rlT0 = performance.now(); };
  for (const type of ['keydown', 'click']) document.addEventListener(type, stamp, true);
}"""


def test_a_typed_order_reads_in_the_raters_numbers():
    assert parse_typed_order("3 1=4 2", 4) == [[2], [0, 3], [1]]
    assert parse_typed_order(" 3,1 = 4>2 ", 4) == parse_typed_order("31=42", 4) == [[2], [0, 3], [1]]
    assert order_text([[2], [0, 3], [1]]) == order_text([[2], [3, 0], [1]]) == "3 1=4 2"
    for typed, words in [
        ("3 1 2", "answer 4 is not placed yet"),
        ("3", "answers 1, 2 and 4 are not placed yet"),
        ("3 1 4 5 2", "There is no answer 5: the answers are numbered 1 to 4"),
        ("3 1 3 2 4", "Answer 3 is placed twice"),
        ("=3 1 4 2", "“=” goes between two answers"),
        ("3 1=4 2=", "“=” goes between two answers"),
        ("3 1==4 2", "“=” goes between two answers"),
        ("3 a 1 4 2", "'a' is not an answer number"),
        ("  ", "No order yet"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            parse_typed_order(typed, 4)


def _world(server, rater: str) -> None:
    with server.session() as s:
        factories.user(s, name=rater, role="rater", password=PASSWORD)
        factories.ranking(s, ANSWERS, prompt="Which answer explains it best?")
        factories.comparisons(s, PAIRS)


def _item(page) -> str | None:
    return page.evaluate(ITEM_JS)


def _submit_then_next(page, submit) -> float:
    """Submit a judgement (``submit`` presses the key or taps the button); the seconds from that
    keystroke or tap to the next item on screen, as the page measured them."""
    page.evaluate(CLOCK_JS)
    before = _item(page)
    submit()
    waited = page.wait_for_function(
        f"(before) => {{ const now = ({ITEM_JS})(); "
        "return now && now !== before && window.__rlT0 !== undefined ? performance.now() - window.__rlT0 : null; }",
        arg=before,
        polling="raf",
    )
    return waited.json_value() / 1000


def _shown_answers(page) -> list[str]:
    cards = page.locator("#rank-answers .rl-rank-card")
    page.locator("#rank-answers .rl-rank-card").first.wait_for()
    titles = [t.strip() for t in cards.locator(".rl-card-title").all_inner_texts()]
    assert [t.split("Placed")[0].split()[-1] for t in titles] == ["1", "2", "3", "4"], titles
    return [b.strip() for b in cards.locator(".rl-card-body").all_inner_texts()]


def _numbers(shown: list[str]) -> list[list[int]]:
    """The meant order in the numbers the rater sees (1 to 4, in the order handed out)."""
    return [[shown.index(text) + 1 for text in group] for group in MEANT]


def _typed(order: list[list[int]]) -> str:
    return " ".join("=".join(str(n) for n in group) for group in order)


def _recorded(order: list[list[int]]) -> str:
    """The page's note once the order is stored (the answers of a place in number order)."""
    return f"Order recorded (best first: {_typed([sorted(group) for group in order])})."


def _ready(page) -> None:
    """As a reading rater would be: past the double-click guard, focus on the page (not a text box)."""
    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    page.locator("body").click(position={"x": 5, "y": 5})


def _stored(server, rater: str) -> dict[frozenset[str], tuple[str, str, Choice]]:
    """The rater's ranking votes, by pair of answer texts: (stored response_a, response_b, choice)."""
    with server.session() as s:
        user = s.exec(select(User).where(User.name == rater)).one()
        out = {}
        for vote in s.exec(select(Vote).where(Vote.rater_id == user.id, col(Vote.ranking_id).is_not(None))):
            comp = s.get(Comparison, vote.comparison_id)
            a, b = s.get(Response, comp.response_a_id).text, s.get(Response, comp.response_b_id).text
            out[frozenset((a, b))] = (a, b, vote.choice)
        return out


def _place(text: str) -> int:
    return next(n for n, group in enumerate(MEANT) if text in group)


def _check_stored_and_exported(server, rater: str, tmp_path) -> None:
    votes = _stored(server, rater)
    assert len(votes) == 6  # every pair of the four answers, once
    for a, b, choice in votes.values():
        meant = Choice.tie if _place(a) == _place(b) else (Choice.a if _place(a) < _place(b) else Choice.b)
        assert choice is meant, (a, b, choice)
    assert [c for _, _, c in votes.values()].count(Choice.tie) == 1
    # The export, ties kept: the better-placed answer is chosen; the one tie is alpha and delta.
    with server.session() as s:
        path = tmp_path / f"{rater}.jsonl"
        export(session=s, path=path, ties="keep", sources=["ranking"])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 6
    for row in rows:
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        if row["tie"]:
            assert {chosen, rejected} == {ANSWERS[0], ANSWERS[3]}
        else:
            assert _place(chosen) < _place(rejected), (chosen, rejected)
    assert sum(row["tie"] for row in rows) == 1


def _pair_timing(page, vote) -> float:
    seconds = _submit_then_next(page, vote)
    page.locator("#rate-status").get_by_text("Vote recorded").wait_for()
    return seconds


def test_a_rater_ranks_by_keyboard_undoes_and_ranks_again(server, new_page, tmp_path):
    _world(server, "rita")
    page = new_page(DESKTOP)
    login(page, server, "rita")
    shown = _shown_answers(page)
    assert sorted(shown) == sorted(ANSWERS)
    assert "ck-ranked" not in page.locator("#rate-ranking").inner_text()  # anonymous
    assert "same place" in page.locator("#rank-guide").inner_text()
    assert "Which answer explains it best?" in page.locator("#rank-prompt").inner_text()
    assert not page.get_by_role("button", name="A is better").is_visible()
    assert "= same place" in page.locator(".rl-keys-hint").inner_text()
    order = _numbers(shown)
    typed = _typed(order)  # e.g. "3 1=4 2"

    # A wrong order is a message on the page, and nothing is stored; what was typed stays to fix.
    _ready(page)
    page.keyboard.type(typed[:-2])
    page.keyboard.press("Enter")
    page.locator("#rate-status").get_by_text("Place every answer: answer").wait_for()
    assert _stored(server, "rita") == {}
    assert page.locator("#rank-order input, #rank-order textarea").input_value() == typed[:-2]
    page.get_by_role("button", name="Clear order").click()

    # Typed on the page: the first number goes to the order box; the order shows as it grows.
    timings = []
    for attempt in range(2):
        _ready(page)
        page.keyboard.type(typed)
        preview = page.locator("#rank-preview")
        preview.get_by_text("every answer placed").wait_for()
        first, second = order[0], sorted(order[1])
        assert f"1st: {first[0]} · 2nd: {second[0]} = {second[1]} · 4th: {order[2][0]}" in preview.inner_text()
        for number in second:
            place = page.locator(f'#rank-answers .rl-rank-card[data-rl-answer="{number}"] .rl-rank-place')
            assert place.inner_text() == "Placed 2nd, shared"
        if attempt == 0:
            screenshot(page, "rate-ranking-desktop")
            timings.append(_submit_then_next(page, lambda: page.keyboard.press("Enter")))
        else:  # the second time with a rationale: Ctrl+Enter in its box sends the order with it
            page.get_by_label("Rationale (optional)").click()
            assert "Ctrl+Enter submits the order" in page.locator("#rate-rationale .rl-guard-hint").inner_text()
            page.keyboard.type("3 reads best")  # a number here is text, not a place
            timings.append(_submit_then_next(page, lambda: page.keyboard.press("Control+Enter")))
        page.locator("#rate-status").get_by_text(_recorded(order)).wait_for()
        assert page.get_by_role("button", name="A is better").is_visible()  # a pair came next
        assert len(_stored(server, "rita")) == 6
        if attempt == 0:
            # Undo: the whole order goes, and the ranking comes back in the order it was shown.
            page.get_by_role("button", name="Undo last order").click()
            page.get_by_text("Order taken back").wait_for()
            assert _shown_answers(page) == shown
            assert _stored(server, "rita") == {}
            page.locator("#rank-preview").get_by_text("Nothing placed yet").wait_for()

    # The pairs work as before, by their keys.
    _ready(page)
    timings.append(_pair_timing(page, lambda: page.keyboard.press("1")))
    _check_stored_and_exported(server, "rita", tmp_path)
    with server.session() as s:
        assert {v.rationale for v in s.exec(select(Vote).where(col(Vote.ranking_id).is_not(None)))} == {"3 reads best"}
    for label, seconds in zip(("ranking", "ranking (again, after undo)", "pair"), timings):
        print(f"rate-ui timing: {label} submit->next {seconds:.3f} s (desktop, keyboard)")


def test_a_rater_ranks_by_tapping_on_a_phone(server, browser, tmp_path):
    _world(server, "pete")
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        login(page, server, "pete")
        shown = _shown_answers(page)
        width = page.evaluate("window.innerWidth")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        order = _numbers(shown)
        timings = []
        for attempt in range(2):
            page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
            if attempt == 0:  # a slip of the thumb, taken back
                page.get_by_role("button", name=f"Answer {order[2][0]}: next place").tap()
                page.get_by_role("button", name="Remove last").tap()
                assert page.locator("#rank-order input, #rank-order textarea").input_value() == ""
            for place, group in enumerate(order):
                for n, number in enumerate(group):
                    name = f"Answer {number}: " + ("same place as previous" if n else "next place")
                    button = page.get_by_role("button", name=name)
                    box = button.bounding_box()
                    assert box["x"] >= 0 and box["x"] + box["width"] <= width and box["height"] >= 40, (name, box)
                    button.tap()
                if place == 0:  # a placed answer cannot be placed again
                    assert page.get_by_role("button", name=f"Answer {group[0]}: next place").is_disabled()
            assert page.locator("#rank-order input, #rank-order textarea").input_value() == _typed(order)
            page.locator("#rank-preview").get_by_text("every answer placed").wait_for()
            if attempt == 0:
                screenshot(page, "rate-ranking-phone")
            submit = page.get_by_role("button", name="Submit order")
            timings.append(_submit_then_next(page, submit.tap))
            page.locator("#rate-status").get_by_text(_recorded(order)).wait_for()
            if attempt == 0:
                page.get_by_role("button", name="Undo last order").tap()
                page.get_by_text("Order taken back").wait_for()
                assert _shown_answers(page) == shown
                assert _stored(server, "pete") == {}
        page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
        timings.append(_pair_timing(page, page.get_by_role("button", name="B is better").tap))
        _check_stored_and_exported(server, "pete", tmp_path)
        for label, seconds in zip(("ranking", "ranking (again, after undo)", "pair"), timings):
            print(f"rate-ui timing: {label} submit->next {seconds:.3f} s (phone, tap)")
    finally:
        context.close()


def test_skipping_a_ranking_hands_out_the_next_item(server, new_page):
    _world(server, "rita")
    page = new_page(DESKTOP)
    login(page, server, "rita")
    _shown_answers(page)
    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    page.get_by_role("button", name="Skip this ranking").click()
    page.get_by_text("Skipped: you will not be shown that ranking again today.").wait_for()
    assert page.get_by_role("button", name="A is better").is_visible()
    assert page.get_by_role("button", name="Skip this pair").is_visible()
    assert _stored(server, "rita") == {}
