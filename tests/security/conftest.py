"""The REST API fixtures (an app on a fresh database, users of every role, a small world) reused here."""

from tests.api.conftest import app, cheap_hashing, client, world  # noqa: F401
