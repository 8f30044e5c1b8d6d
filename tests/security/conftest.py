"""The REST API fixtures (an app on a fresh database, users of every role, a small world) reused here."""

from tests.api.conftest import app, cheap_hashing, client, test_engine_url, world  # noqa: F401
