"""Answers render while they stream. The tiny model answers in about 0.1 s, so here the app's
engine (RLHF_INFERENCE_URL) is a slow OpenAI-compatible test server that sends one word every 0.15 s."""

from __future__ import annotations

import pytest

from rlhf.services.checkpoints import register_checkpoint
from tests import factories
from tests.browser.conftest import DESKTOP, PASSWORD, login
from tests.fake_engine import FakeEngine, answer_words

pytestmark = pytest.mark.integration
PROMPT = "Tell me about the sea."


@pytest.fixture
def slow_engine():
    fake = FakeEngine(delay_s=0.15)
    stop = fake.serve()
    yield fake
    stop()


@pytest.fixture
def server_env(slow_engine):
    return {"RLHF_INFERENCE_URL": slow_engine.url}


def test_both_answers_grow_on_the_page_while_they_stream(server, new_page, slow_engine):
    with server.session() as s:
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        register_checkpoint(session=s, path="org/model-one", name="one", serve=True)
        register_checkpoint(session=s, path="org/model-two", name="two", serve=True)
    page = new_page(DESKTOP)
    login(page, server, "rita")
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-prompt textarea").fill(PROMPT)
    # Record each card's text length as the page changes, from the moment Send is clicked.
    page.evaluate("""() => { window.__lengths = {a: [], b: []};
        const take = () => { for (const side of ['a', 'b']) {
            const el = document.querySelector('#arena-' + side + ' .rl-card-body');
            const n = el ? el.innerText.length : 0; const seen = window.__lengths[side];
            if (seen[seen.length - 1] !== n) seen.push(n); } };
        new MutationObserver(take).observe(document.body, {childList: true, subtree: true, characterData: true});
    }""")
    page.locator("#arena-send").click()
    page.locator("#arena-vote-a").wait_for(state="visible", timeout=60_000)
    lengths = page.evaluate("window.__lengths")
    final = {side: page.locator(f"#arena-{side} .rl-card-body").inner_text() for side in ("a", "b")}
    words = len(answer_words("x", [{"role": "user", "content": PROMPT}], 64))
    for side in ("a", "b"):
        assert final[side].startswith("This is an answer from model-")
        partial = [n for n in lengths[side] if 0 < n < len(final[side])]
        # Shown in several steps before it was whole, not at once at the end.
        assert len(partial) >= 3, (side, lengths[side], words)
