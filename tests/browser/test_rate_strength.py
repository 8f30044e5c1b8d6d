"""How much better, on the Rate tab of a deployment that asks (RLHF_ASK_STRENGTH): Shift+1/2 votes
"much better" in the same keystroke, small buttons beside Undo mark the last vote, on a desktop
and on a phone; a deployment that does not ask shows and stores none of it."""

from __future__ import annotations

import pytest

from rlhf.models import Choice, JobStatus
from tests import factories
from tests.browser.conftest import DESKTOP, PASSWORD, PHONE, login, screenshot
from tests.browser.test_rate import DOUBLE_CLICK_GUARD_S, _preferred, _shown, _stored_votes, _wait_for_new_pair

pytestmark = pytest.mark.integration
STRENGTH_IDS = ("#rate-strength-1", "#rate-strength-2", "#rate-strength-3")


@pytest.fixture
def server_env(request) -> dict[str, str]:
    """The deployment asks how much better, unless a test says ``False``."""
    return {"RLHF_ASK_STRENGTH": "1"} if getattr(request, "param", True) else {}


def _ready(page) -> None:
    """As a reading rater would be: past the double-click guard, focus on the page (not a text box)."""
    page.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
    page.locator("body").click(position={"x": 5, "y": 5})


def _key_vote(page, key: str) -> tuple[str, str]:
    """Press ``key`` on the pair shown; returns that pair once the next one is on screen."""
    shown = _shown(page)
    _ready(page)
    page.keyboard.press(key)
    _wait_for_new_pair(page, shown)
    return shown


def test_shift_votes_much_better_and_the_buttons_mark_the_last_vote(server, new_page, browser):
    with server.session() as s:
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        factories.user(s, name="pete", role="rater", password=PASSWORD)
        factories.comparisons(s, [(f"left answer {i}", f"right answer {i}") for i in range(5)])
    page = new_page(DESKTOP)
    login(page, server, "rita")
    page.get_by_role("button", name="A is better").wait_for()
    assert "Shift+1/2 much better" in page.locator(".rl-keys-hint").inner_text()
    page.get_by_role("button", name="Guidelines").click()
    assert "plainly better" in page.locator("#rate-guidelines").inner_text()
    page.get_by_role("button", name="Guidelines").click()
    assert not page.locator("#rate-strength").is_visible()
    # The "much better" twins are out of sight, and name their keys.
    assert page.locator("#vote-b-much").bounding_box()["width"] <= 1
    assert page.locator("#vote-b-much").get_attribute("aria-keyshortcuts") == "Shift+2"

    # Shift+2: B, much better, whichever side the stored pair had it on.
    first = _key_vote(page, "Shift+Digit2")
    page.locator("#rate-status").get_by_text("Vote recorded: B is better, much better.").wait_for()
    strength = page.locator("#rate-strength")
    strength.wait_for()
    assert "primary" in page.locator("#rate-strength-3").get_attribute("class")
    # 1 alone: A, with no strength; then "Clearly better" marks it.
    second = _key_vote(page, "1")
    page.locator("#rate-status").get_by_text("Vote recorded: A is better.").wait_for()
    assert "primary" not in page.locator("#rate-strength-3").get_attribute("class")
    (v1, a1, b1), (v2, a2, b2) = _stored_votes(server, "rita")
    assert _preferred(v1, a1, b1) == first[1] and v1.strength == 3
    assert _preferred(v2, a2, b2) == second[0] and v2.strength is None
    page.get_by_role("button", name="Clearly better").click()
    page.get_by_text("Last vote (A is better) marked clearly better.").wait_for()
    assert _stored_votes(server, "rita")[1][0].strength == 2
    screenshot(page, "rate-strength-desktop")

    # Undo takes the buttons away with the vote; a tie has no strength, so no buttons either.
    page.get_by_role("button", name="Undo last vote").click()
    page.get_by_text("Vote taken back").wait_for()
    assert not strength.is_visible()
    _key_vote(page, "3")
    page.locator("#rate-status").get_by_text("Vote recorded: Tie.").wait_for()
    assert not strength.is_visible()
    assert [(v.choice, v.strength) for v, _, _ in _stored_votes(server, "rita")][1:] == [(Choice.tie, None)]

    # On a phone the buttons are in reach of a thumb after a vote.
    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    try:
        phone = context.new_page()
        login(phone, server, "pete")
        phone.wait_for_timeout(DOUBLE_CLICK_GUARD_S * 1000)
        phone.get_by_role("button", name="B is better").tap()
        much = phone.locator("#rate-strength-3")
        much.wait_for()
        width = phone.evaluate("window.innerWidth")
        assert phone.evaluate("document.documentElement.scrollWidth") <= width
        for selector in STRENGTH_IDS:
            box = phone.locator(selector).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= width and box["height"] >= 24, (selector, box)
        much.tap()
        phone.get_by_text("Last vote (B is better) marked much better.").wait_for()
        screenshot(phone, "rate-strength-phone")
        assert [v.strength for v, _, _ in _stored_votes(server, "pete")] == [3]
    finally:
        context.close()


@pytest.mark.parametrize("server_env", [False], indirect=True)
def test_without_the_setting_only_the_pairs_of_a_job_that_asked_take_a_strength(server, new_page):
    from rlhf.services.generation_jobs import create_generation_job

    with server.session() as s:
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        plain, asking = factories.comparisons(s, [("left", "right"), ("one side", "other side")], serve=True)
        job = create_generation_job(session=s, ask_strength=True)
        job.status = JobStatus.succeeded  # the pairs are there already: nothing for the worker to sample
        asking.job_id = job.id
        s.add_all([job, asking])
    page = new_page(DESKTOP)
    login(page, server, "rita")
    page.get_by_role("button", name="A is better").wait_for()
    # The first pair's job did not ask: Shift+1 is no vote, and nothing about strength shows.
    assert "left" in " ".join(_shown(page))
    _ready(page)
    page.keyboard.press("Shift+Digit1")
    page.wait_for_timeout(1000)  # time for a vote to arrive, if one were sent
    assert _stored_votes(server, "rita") == []
    assert "Shift" not in page.locator(".rl-keys-hint").inner_text()
    for selector in ("#vote-a-much", "#vote-b-much"):
        assert not page.locator(selector).is_visible(), selector
    _key_vote(page, "1")
    page.get_by_text("Vote recorded: A is better.").wait_for()
    for selector in ("#rate-strength", "#rate-strength-1"):  # the vote was on a pair that did not ask
        assert not page.locator(selector).is_visible(), selector
    # The next pair's job asked: the keys and the buttons are there for it.
    assert "Shift+1/2 much better" in page.locator(".rl-keys-hint").inner_text()
    shown = _shown(page)
    _ready(page)
    page.keyboard.press("Shift+Digit1")  # the last pair: what follows is "nothing left"
    page.locator("#rate-status").get_by_text("Vote recorded: A is better, much better.").wait_for()
    page.locator("#rate-strength").wait_for()
    (v1, _, _), (v2, a2, b2) = _stored_votes(server, "rita")
    assert v1.strength is None and v2.strength == 3 and _preferred(v2, a2, b2) == shown[0]


@pytest.mark.parametrize("server_env", [False], indirect=True)
def test_an_engineer_starts_a_generation_that_asks_how_much_better(server, new_page):
    from sqlmodel import select

    from rlhf.models import GenerationJob
    from rlhf.services.checkpoints import register_checkpoint

    with server.session() as s:
        factories.user(s, name="erin", role="engineer", password=PASSWORD)
        register_checkpoint(session=s, path="org/not-downloaded", name="policy", serve=True)
    page = new_page(DESKTOP)
    login(page, server, "erin")
    box = page.get_by_label("Ask raters how much better (slightly / clearly / much) on these pairs")
    box.wait_for()
    assert not box.is_checked()  # the deployment does not ask: each job may
    page.get_by_label("Prompts", exact=True).fill("1")
    box.check()
    page.get_by_role("button", name="Start generation").click()
    page.locator("#generation-status").get_by_text("queued", exact=False).wait_for()
    with server.session() as s:
        (job,) = s.exec(select(GenerationJob)).all()
        assert job.params["ask_strength"] is True and job.params["limit"] == 1
