"""Many raters at once: no comparison gets more votes than it asked for, no vote is stored twice."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlmodel import select

from rlhf.models import Vote
from tests import factories
from tests.api.conftest import bearer


def test_thirty_raters_twenty_comparisons_one_vote_each(client, app, session):
    # More raters at once than the connection pool holds (SQLite: 15): hand-outs and votes
    # must not wait on each other for a connection while holding the hand-out lock.
    comps = factories.comparisons(session, [(f"a{i}", f"b{i}") for i in range(20)], target_votes=1)
    raters = [factories.user(session, f"r{i}") for i in range(30)]
    session.commit()
    headers = [bearer(app, r) for r in raters]
    start = threading.Barrier(len(raters))

    def rate(h: dict) -> list[tuple[int, int]]:
        start.wait()
        done = []
        while True:
            handout = client.get("/api/comparisons/next", headers=h)
            if handout.status_code == 204:
                return done
            assert handout.status_code == 200, handout.text
            cid = handout.json()["comparison_id"]
            vote = client.post("/api/votes", headers=h, json={"comparison_id": cid, "choice": "a"})
            done.append((cid, vote.status_code, vote.text[:150]))

    with ThreadPoolExecutor(len(raters)) as pool:
        results = [r for rs in pool.map(rate, headers) for r in rs]

    session.expire_all()
    per_comparison = Counter(v.comparison_id for v in session.exec(select(Vote)))
    assert per_comparison == Counter({c.id: 1 for c in comps}), "a comparison got more votes than its target"
    # Leases hand each pair to one rater at a time, so nobody judges a pair only to be told it closed.
    assert sorted(status for _, status, _t in results) == [201] * 20, [r for r in results if r[1] != 201][:3]


def test_one_vote_sent_fifty_times_at_once_is_stored_once(client, app, session):
    factories.comparisons(session, [("x", "y")])
    rater = factories.user(session)
    session.commit()
    headers = bearer(app, rater)
    cid = client.get("/api/comparisons/next", headers=headers).json()["comparison_id"]
    start = threading.Barrier(50)

    def send(_: int):
        start.wait()
        return client.post(
            "/api/votes",
            headers={**headers, "Idempotency-Key": "double-click"},
            json={"comparison_id": cid, "choice": "b"},
        )

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(send, range(50)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == Counter({201: 1, 200: 49}), [r.text for r in responses if r.status_code >= 300][:3]
    assert len({r.json()["id"] for r in responses}) == 1
    session.expire_all()
    assert len(session.exec(select(Vote)).all()) == 1


def test_twenty_raters_at_once_each_ranking_ordered_by_as_many_raters_as_it_asked(client, app, session):
    rankings = [
        factories.ranking(session, [f"a{i}", f"b{i}", f"c{i}"], target_votes=2, prompt=f"q{i}") for i in range(8)
    ]
    factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(6)], target_votes=1)
    raters = [factories.user(session, f"r{i}") for i in range(20)]
    session.commit()
    headers = [bearer(app, r) for r in raters]
    start = threading.Barrier(len(raters))

    def rate(h: dict) -> list[int]:
        start.wait()
        statuses = []
        while True:
            handout = client.get("/api/comparisons/next", params={"kinds": "pair,ranking"}, headers=h)
            if handout.status_code == 204:
                return statuses
            item = handout.json()
            if item["kind"] == "ranking":
                order = [[n] for n in range(len(item["answers"]))]
                sent = client.post("/api/rankings", headers=h, json={"ranking_id": item["ranking_id"], "order": order})
            else:
                sent = client.post(
                    "/api/votes", headers=h, json={"comparison_id": item["comparison_id"], "choice": "a"}
                )
            statuses.append(sent.status_code)

    with ThreadPoolExecutor(len(raters)) as pool:
        statuses = [s for ss in pool.map(rate, headers) for s in ss]

    session.expire_all()
    by_ranking = Counter(
        (v.ranking_id, v.rater_id) for v in session.exec(select(Vote).where(Vote.ranking_id.is_not(None)))
    )
    orders = Counter(ranking_id for ranking_id, _ in by_ranking)
    assert orders == Counter({r.id: 2 for r in rankings}), "a ranking got more or fewer orders than its target"
    assert set(by_ranking.values()) == {3}  # every order is all three of its pairs
    # Leases hand each place to one rater at a time: every judgement sent was stored.
    assert statuses == [201] * (8 * 2 + 6)
