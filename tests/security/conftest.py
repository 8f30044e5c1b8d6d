"""The REST API fixtures (an app on a fresh database, users of every role, a small world) and the
browser fixtures (``rlhf serve`` in a subprocess, Chromium pages) reused here."""

from tests.api.conftest import app, cheap_hashing, client, test_engine_url, world  # noqa: F401
from tests.browser.conftest import new_page, server, server_env  # noqa: F401
