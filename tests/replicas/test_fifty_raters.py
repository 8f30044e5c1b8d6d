"""Fifty raters over REST through nginx, spread over two web processes by their session cookies:
every acknowledged vote is stored once, and no pair gets more votes than it asked for."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlmodel import select

from rlhf.models import Vote
from tests import factories
from tests.replicas.conftest import PASSWORD, login, worker_of

pytestmark = pytest.mark.integration
RATERS = 50
PAIRS = 40
TARGET = 3  # raters per pair


def test_fifty_raters_on_two_processes_lose_and_double_no_vote(fresh):
    with fresh.session() as s:
        comps = factories.comparisons(s, [(f"a{i}", f"b{i}") for i in range(PAIRS)], target_votes=TARGET)
        for i in range(RATERS):
            factories.user(s, name=f"r{i}", role="rater", password=PASSWORD)
    start = threading.Barrier(RATERS)

    def rate(i: int) -> list[tuple[int, int, int]]:
        """(vote id, comparison id, process index) of each vote the server acknowledged."""
        acked, processes = [], set()
        headers = {"X-Requested-With": "fetch"}  # a cookie-authenticated POST names itself
        with httpx.Client(base_url=fresh.base_url, timeout=120, headers=headers) as client:
            login(client, f"r{i}")
            start.wait()
            while True:
                handout = client.get("/api/comparisons/next")
                processes.add(worker_of(handout)[0])
                if handout.status_code == 204:
                    break
                assert handout.status_code == 200, handout.text
                cid = handout.json()["comparison_id"]
                vote = client.post("/api/votes", json={"comparison_id": cid, "choice": "a"})
                assert vote.status_code == 201, vote.text
                processes.add(worker_of(vote)[0])
                acked.append((vote.json()["id"], cid, worker_of(vote)[0]))
        # The cookie's hash keeps a rater on one process while both are up.
        assert len(processes) == 1, f"rater r{i} was served by processes {processes}"
        return acked

    with ThreadPoolExecutor(RATERS) as pool:
        acked = [a for one in pool.map(rate, range(RATERS)) for a in one]

    assert {process for *_, process in acked} == {0, 1}, "both web processes must have taken votes"
    with fresh.session() as s:
        stored = s.exec(select(Vote)).all()
    assert sorted(v.id for v in stored) == sorted(vote_id for vote_id, *_ in acked), "a vote was lost or added"
    assert len({(v.rater_id, v.comparison_id) for v in stored}) == len(stored), "a rater voted twice on a pair"
    per_pair = Counter(v.comparison_id for v in stored)
    assert per_pair == Counter({c.id: TARGET for c in comps}), "a pair got more (or fewer) votes than its target"
