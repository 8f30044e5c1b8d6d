"""A page on another origin, in real Chromium, tries to use the rater's login and to frame the app.

The other origin is another port on the same host: the same *site*, so the browser sends
the SameSite=Lax cookie with its requests. What stops it is that the app grants no CORS
(``fetch`` with custom headers needs a preflight that is refused), and that every page
forbids framing by other origins. An origin listed in ``RLHF_CORS_ORIGINS`` may call the API.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator

import pytest
from sqlmodel import select

from rlhf.models import Vote
from tests import factories
from tests.browser.conftest import login

pytestmark = pytest.mark.integration

_PAGE = """<!doctype html><html><body>
<iframe id="framed" src="{app}/login" width="600" height="400"></iframe>
<script>
window.attempt = async function (comparisonId) {{
  try {{
    const r = await fetch("{app}/api/votes", {{method: "POST", credentials: "include",
      headers: {{"Content-Type": "application/json", "X-Requested-With": "fetch"}},
      body: JSON.stringify({{comparison_id: comparisonId, choice: "a"}})}});
    return "status " + r.status;
  }} catch (e) {{ return "blocked: " + e; }}
}};
</script></body></html>"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def other_port() -> int:
    return _free_port()


@pytest.fixture
def server_env(request, other_port) -> dict[str, str]:
    allow = getattr(request, "param", False)
    return {"RLHF_CORS_ORIGINS": f"http://127.0.0.1:{other_port}"} if allow else {}


@contextlib.contextmanager
def _other_origin(port: int, app_url: str) -> Iterator[str]:
    body = _PAGE.format(app=app_url).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _open_pair(server) -> int:
    with server.session() as s:
        factories.user(s, name="rita", password="correct-horse-battery")
        comparison = factories.comparisons(s, [("first answer", "second answer")])[0]
        s.commit()
        return comparison.id


def _attempt_from_the_other_origin(server, new_page, other_port) -> tuple[str, int, int]:
    """A logged-in rater opens the other origin's page, which tries to vote and frames the login form.

    Returns what the page's fetch saw, the comparison id, and how many password boxes rendered in the frame.
    """
    comparison_id = _open_pair(server)
    page = new_page()
    login(page, server, "rita")
    with _other_origin(other_port, server.base_url) as url:
        page.goto(url)
        outcome = page.evaluate("id => window.attempt(id)", comparison_id)
        page.wait_for_timeout(1000)
        framed_inputs = page.frame_locator("#framed").locator("input[name=password]").count()
    return outcome, comparison_id, framed_inputs


@pytest.mark.parametrize("server_env", [False], indirect=True)
def test_a_page_on_another_port_can_neither_vote_with_the_cookie_nor_frame_the_app(server, new_page, other_port):
    outcome, _, framed_inputs = _attempt_from_the_other_origin(server, new_page, other_port)
    assert outcome.startswith("blocked"), outcome
    with server.session() as s:
        assert s.exec(select(Vote)).all() == []
    assert framed_inputs == 0  # the login form did not render inside the other site's page


@pytest.mark.parametrize("server_env", [True], indirect=True)
def test_an_origin_in_the_setting_may_call_the_api_with_the_cookie(server, new_page, other_port):
    outcome, comparison_id, _ = _attempt_from_the_other_origin(server, new_page, other_port)
    assert outcome == "status 201", outcome
    with server.session() as s:
        assert [v.comparison_id for v in s.exec(select(Vote)).all()] == [comparison_id]
