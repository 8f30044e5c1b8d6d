"""Logout in real Chromium: *Log out* ends this browser's login only, *Log out everywhere* every one."""

from __future__ import annotations

import pytest

from tests import factories
from tests.browser.conftest import PASSWORD, login, screenshot

pytestmark = pytest.mark.integration


def test_log_out_here_and_everywhere_from_the_page(server, new_page):
    with server.session() as s:
        factories.user(s, name="rita", password=PASSWORD)
        s.commit()
    laptop, phone, tablet = new_page(), new_page(), new_page()
    for page in (laptop, phone, tablet):
        login(page, server, "rita")
    screenshot(laptop, "header-logout-buttons")

    laptop.get_by_role("button", name="Log out", exact=True).click()
    laptop.wait_for_url("**/login**")
    phone.reload()
    phone.get_by_text("Logged in as rita").wait_for()  # another browser's login is untouched

    phone.get_by_role("button", name="Log out everywhere").click()
    phone.wait_for_url("**/login**")
    tablet.goto(f"{server.base_url}/")
    tablet.wait_for_url("**/login**")
    assert tablet.get_by_label("Password").is_visible()
