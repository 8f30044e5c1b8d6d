"""The Rate tab when a vote comes too late: the pair went to another rater, and the page says so."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from rlhf.models import Assignment, User, Vote, utcnow
from rlhf.services.comparisons import next_for_rater
from tests import factories
from tests.browser.conftest import DESKTOP, PASSWORD, login

pytestmark = pytest.mark.integration


def test_a_vote_on_a_pair_handed_to_another_rater_says_why_it_was_not_stored(server, new_page):
    with server.session() as s:
        factories.user(s, name="rita", role="rater", password=PASSWORD)
        bob_id = factories.user(s, name="bob", role="rater", password=PASSWORD).id
        (comp,) = factories.comparisons(s, [("left answer", "right answer")])
        comp_id = comp.id
    page = new_page(DESKTOP)
    login(page, server, "rita")
    page.get_by_role("button", name="A is better").wait_for()

    # Her lease runs out while she reads, and the pair is handed to bob.
    with server.session() as s:
        s.exec(sa.update(Assignment).values(expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
        assert next_for_rater(session=s, rater=s.get(User, bob_id)).comparison_id == comp_id

    page.get_by_role("button", name="A is better").click()
    page.get_by_text("Your vote was not stored").wait_for()
    shown = page.locator("#rate-status").inner_text()
    assert "handed to another rater" in shown and "no more votes" in shown, shown
    with server.session() as s:
        assert s.exec(select(Vote)).all() == []
