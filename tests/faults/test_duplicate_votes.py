"""One vote sent 1,000 times at once over real HTTP is stored once, on SQLite and PostgreSQL.

A double click, a retry after a timeout, a client that resends everything: all are
the same vote arriving several times, possibly at the same instant, possibly on
different connections handled by different threads of the server. Exactly one request
stores it (201), every other one gets the stored vote back (200), and the database holds
one row. In the browser, a double click on a vote button is covered by
``tests/browser/test_rate.py::test_rater_votes_by_mouse_key_and_double_click``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rlhf import db
from rlhf.models import Role
from tests import factories
from tests.faults.conftest import count

pytestmark = [pytest.mark.integration, pytest.mark.slow]
COPIES = 1000
PASSWORD = "correct-horse-battery"


def _run(coroutine):
    """asyncio.run in a thread of its own: the browser tests' Playwright keeps an event loop
    running in the main thread for the whole session."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _send_all(base_url: str, token: str, body: dict) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=COPIES, max_keepalive_connections=COPIES)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=120, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        # Half the copies carry the key in the header, as a retrying client would; all are the same vote.
        requests = [
            client.post("/api/votes", json=body, headers={"Idempotency-Key": "click-1"} if i % 2 else {})
            for i in range(COPIES)
        ]
        return await asyncio.gather(*requests)


def test_a_thousand_concurrent_copies_of_one_vote_store_one(db_url, serve):
    with db.session_scope(db.get_engine(db_url)) as s:
        factories.comparisons(s, [("left", "right"), ("other left", "other right")])
        factories.user(s, "rita", role=Role.rater, password=PASSWORD)
    db.get_engine(db_url).dispose()
    server = serve(db_url)
    token = httpx.post(f"{server.base_url}/api/token", auth=("rita", PASSWORD), timeout=30).json()["access_token"]
    handout = httpx.get(f"{server.base_url}/api/comparisons/next", headers={"Authorization": f"Bearer {token}"})
    cid = handout.json()["comparison_id"]

    responses = _run(
        _send_all(server.base_url, token, {"comparison_id": cid, "choice": "b", "idempotency_key": "click-1"})
    )
    statuses = Counter(r.status_code for r in responses)
    stored = count(db_url, "SELECT count(*) FROM vote")
    print(f"{db_url.split(':')[0]}: {COPIES} copies sent, answers {dict(statuses)}, {stored} vote stored")
    assert statuses == Counter({201: 1, 200: COPIES - 1}), [r.text for r in responses if r.status_code > 201][:3]
    assert len({r.json()["id"] for r in responses}) == 1
    assert {r.json()["choice"] for r in responses} == {"b"}
    assert stored == 1
    assert count(db_url, "SELECT count(*) FROM comparison WHERE status = 'closed'") == 1
    following = httpx.get(f"{server.base_url}/api/comparisons/next", headers={"Authorization": f"Bearer {token}"})
    assert following.status_code == 200 and following.json()["comparison_id"] != cid


async def _rate_until_done(base_url: str, tokens: list[str]) -> Counter:
    """Every rater loops next → vote as fast as answers come until nothing is left for them."""
    answers: Counter = Counter()
    limits = httpx.Limits(max_connections=len(tokens) + 5, max_keepalive_connections=len(tokens) + 5)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def rater(token: str) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            while True:
                handout = await client.get("/api/comparisons/next", headers=headers)
                answers[f"next {handout.status_code}"] += 1
                if handout.status_code != 200:
                    return
                vote = await client.post(
                    "/api/votes",
                    headers=headers,
                    json={"comparison_id": handout.json()["comparison_id"], "choice": "a"},
                )
                answers[f"vote {vote.status_code}"] += 1

        await asyncio.gather(*(rater(t) for t in tokens))
    return answers


def test_fifty_raters_at_once_over_http_empty_the_queue_without_an_error(db_url, serve):
    """More raters than the server has database connections, each voting as fast as it can.

    The hand-out and the vote share a lock on SQLite; a request that took the lock before
    its connection, while every connection belonged to a request waiting for the lock,
    stalled the server for the pool's 30 s timeout and answered 500.
    """
    with db.session_scope(db.get_engine(db_url)) as s:
        factories.comparisons(s, [(f"left {i}", f"right {i}") for i in range(150)])
        for i in range(50):
            factories.user(s, f"r{i}", role=Role.rater, password=PASSWORD)
    db.get_engine(db_url).dispose()
    server = serve(db_url)
    tokens = [
        httpx.post(f"{server.base_url}/api/token", auth=(f"r{i}", PASSWORD), timeout=30).json()["access_token"]
        for i in range(50)
    ]
    answers = _run(_rate_until_done(server.base_url, tokens))
    print(f"{db_url.split(':')[0]}: {dict(answers)}")
    assert answers["vote 201"] == 150 and answers["next 204"] == 50, answers
    assert set(answers) == {"next 200", "next 204", "vote 201"}, answers
    assert count(db_url, "SELECT count(*) FROM vote") == 150
