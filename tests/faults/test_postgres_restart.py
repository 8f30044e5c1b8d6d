"""PostgreSQL restarts (a clean stop, then a crash) while raters vote over HTTP.

The web app (``rlhf serve``, real uvicorn) is never restarted: it must answer again by
itself once the database is back (pooled connections are checked before use), answer
503 with Retry-After, never 500, while it is away, and every vote a rater saw
acknowledged must be in the database afterwards. Raters behave as the UI does: a vote
that got no answer is sent again with the same idempotency key.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import httpx
import pytest

from rlhf import db
from rlhf.models import Role
from tests import factories
from tests.faults.conftest import count, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RATERS = 8
PAIRS = 1500
PASSWORD = "correct-horse-battery"


def test_votes_survive_postgres_restarts_and_the_app_recovers_by_itself(private_postgres, serve):
    pg = private_postgres
    with db.session_scope(db.get_engine(pg.url)) as s:
        factories.comparisons(s, [(f"left {i}", f"right {i}") for i in range(PAIRS)])
        for i in range(RATERS):
            factories.user(s, f"rater{i}", role=Role.rater, password=PASSWORD)
    db.get_engine(pg.url).dispose()
    server = serve(pg.url)
    tokens = [
        httpx.post(f"{server.base_url}/api/token", auth=(f"rater{i}", PASSWORD), timeout=30).json()["access_token"]
        for i in range(RATERS)
    ]

    stop = threading.Event()
    lock = threading.Lock()
    sent: list[int] = []  # comparisons voted on (each vote once, however often it was retried)
    acknowledged: dict[int, int] = {}  # comparison -> the vote id the app answered with
    refused: list[tuple[int, str]] = []
    statuses: Counter = Counter()
    problems: list[str] = []

    def call(client: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
        """Send until the app answers something other than 'database unavailable' (or give up after 60 s)."""
        deadline = time.monotonic() + 60
        while True:
            try:
                response = client.request(method, url, **kwargs)
                with lock:
                    statuses[response.status_code] += 1
                if response.status_code != 503:
                    return response
                assert response.json()["error"] == "DatabaseUnavailable" and response.headers["Retry-After"]
            except httpx.TransportError as exc:
                with lock:
                    statuses[type(exc).__name__] += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {url}: no answer within 60 s")
            time.sleep(0.2)

    def rate(token: str) -> None:
        try:
            with httpx.Client(
                base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=15
            ) as client:
                while not stop.is_set():
                    handout = call(client, "GET", "/api/comparisons/next")
                    if handout.status_code == 204:
                        return
                    assert handout.status_code == 200, handout.text
                    cid = handout.json()["comparison_id"]
                    with lock:
                        sent.append(cid)
                    vote = call(
                        client,
                        "POST",
                        "/api/votes",
                        json={"comparison_id": cid, "choice": "a"},
                        headers={"Idempotency-Key": uuid.uuid4().hex},
                    )
                    with lock:
                        if vote.status_code == 409:  # told so: the rater knows this one did not count
                            refused.append((cid, vote.json()["detail"]))
                            continue
                        assert vote.status_code in (200, 201), vote.text
                        acknowledged[cid] = vote.json()["id"]
        except BaseException as exc:  # surfaced below, with the figures
            problems.append(repr(exc))

    threads = [threading.Thread(target=rate, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    recoveries = []
    try:
        for mode, down_s in (("fast", 3.0), ("immediate", 3.0)):
            time.sleep(3.0)
            before = len(acknowledged)
            refused_before = len(refused)
            pg.stop(mode)
            time.sleep(down_s)
            pg.start()
            back = time.monotonic()
            wait_until(
                lambda: httpx.get(f"{server.base_url}/api/health", timeout=5).status_code == 200,
                30,
                "the web app did not recover by itself",
            )
            health_s = time.monotonic() - back
            wait_until(lambda: len(acknowledged) > before + RATERS, 30, "votes are not acknowledged again")
            recoveries.append((mode, health_s, time.monotonic() - back, len(refused) - refused_before))
        time.sleep(2.0)
    finally:
        stop.set()
        for t in threads:
            t.join(90)

    stored = count(pg.url, "SELECT count(*) FROM vote")
    stored_ids = {row for row in _vote_ids(pg.url)}
    missing = set(acknowledged.values()) - stored_ids
    for mode, health_s, votes_s, lost_leases in recoveries:
        print(
            f"PostgreSQL {mode} restart: health 200 {health_s:.2f} s and votes acknowledged again "
            f"{votes_s:.2f} s after the database was back; {lost_leases} votes refused (409)"
        )
    print(
        f"votes sent {len(sent)}, acknowledged {len(acknowledged)}, refused {len(refused)} {refused}, "
        f"stored {stored}; answers {dict(statuses)}"
    )
    assert not problems, problems
    assert statuses[503] + sum(v for k, v in statuses.items() if isinstance(k, str)) > 0, "no request saw the outage"
    assert statuses[500] == 0, "a database outage must be a 503, never a 500"
    assert not missing, f"acknowledged votes missing from the database: {sorted(missing)[:10]}"
    assert len(acknowledged) == stored and len(sent) == len(acknowledged) + len(refused)
    # A clean restart loses nothing. A crash may lose the leases of the last moment (they are
    # committed without waiting for the disk), so a rater voting on such a pair is told 409:
    # at most the one pair each rater had in hand, never a vote that was acknowledged.
    assert recoveries[0][3] == 0, refused
    assert len(refused) <= RATERS, refused


def _vote_ids(url: str) -> list[int]:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.text("SELECT id FROM vote"))]
    finally:
        engine.dispose()
