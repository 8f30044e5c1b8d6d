"""Unit tests run in one process on one session: each test's transaction is rolled back.

A test here that needs its data seen by another connection (the app, a worker) asks for
``fresh_db_url`` and ``committed_session`` instead (see test_pair_selection.py).
"""

import pytest


@pytest.fixture
def db_url(rollback_db_url):
    return rollback_db_url


@pytest.fixture
def session(settings, rollback_session):
    return rollback_session
