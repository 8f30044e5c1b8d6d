"""A web process killed (SIGKILL) while raters vote: no acknowledged vote is lost or doubled, the
proxy sends the next requests to the other process, where the same cookie is valid and the
rater's leased pair is waiting, and ``rlhf serve`` starts the dead process again."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlmodel import select

from rlhf.models import Vote
from tests import factories
from tests.replicas.conftest import PASSWORD, ROOT, Replicas, login, worker_of

pytestmark = pytest.mark.integration
HEADERS = {"X-Requested-With": "fetch"}
FAIL_TIMEOUT_S = int(re.search(r"fail_timeout=(\d+)s", (ROOT / "deploy/nginx/rlhf.conf").read_text()).group(1))


def _restarted(replicas: Replicas, index: int, dead_pid: int, killed_at: float, timeout: float = 120) -> int:
    """Waits until ``rlhf serve`` has a new process ``index`` that answers, and nginx sends to it
    again (it leaves a failed server out for fail_timeout); the new pid."""
    deadline = time.monotonic() + timeout
    while True:
        pid = replicas.pids().get(index)
        if pid != dead_pid:
            replicas.wait_until_both_answer(timeout=max(1.0, deadline - time.monotonic()))
            time.sleep(max(0.0, killed_at + FAIL_TIMEOUT_S + 1 - time.monotonic()))
            return pid
        assert time.monotonic() < deadline, f"process {index} not restarted in {timeout} s:\n{replicas.log_tail()}"
        time.sleep(0.3)


def test_a_rater_whose_process_died_keeps_their_pair(fresh):
    with fresh.session() as s:
        factories.comparisons(s, [(f"a{i}", f"b{i}") for i in range(3)])
        factories.user(s, name="rita", password=PASSWORD)
    with httpx.Client(base_url=fresh.base_url, timeout=60, headers=HEADERS) as client:
        login(client, "rita")
        first = client.get("/api/comparisons/next")
        assert first.status_code == 200, first.text
        index, pid = worker_of(first)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()

        # The same cookie, now answered by the other process: the pair leased before is still hers.
        again = client.get("/api/comparisons/next")
        assert again.status_code == 200, again.text
        assert again.json()["comparison_id"] == first.json()["comparison_id"]
        assert worker_of(again)[1] != pid
        cid = first.json()["comparison_id"]
        vote = client.post("/api/votes", json={"comparison_id": cid, "choice": "b"})
        assert vote.status_code == 201, vote.text
    assert _restarted(fresh, index, pid, killed_at) != pid
    with fresh.session() as s:
        assert [v.comparison_id for v in s.exec(select(Vote))] == [cid]


RATERS = 20
PAIRS = 30
TARGET = 2


def test_a_process_killed_mid_load_loses_no_acknowledged_vote(fresh):
    with fresh.session() as s:
        comps = factories.comparisons(s, [(f"a{i}", f"b{i}") for i in range(PAIRS)], target_votes=TARGET)
        for i in range(RATERS):
            factories.user(s, name=f"k{i}", password=PASSWORD)
    victim = fresh.pids()[0]
    acked_so_far = Counter[str]()
    killed = threading.Event()
    logged_in = threading.Barrier(RATERS)  # the kill falls among votes, not logins
    killed_at: list[float] = []
    lock = threading.Lock()

    def send(client: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
        """What a careful client does: retry a failed request (a vote with the same Idempotency-Key)."""
        for _ in range(30):
            try:
                r = client.request(method, url, **kwargs)
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            if r.status_code not in (502, 503, 504):
                return r
            time.sleep(0.5)
        raise AssertionError(f"{method} {url}: no answer after 30 tries")

    def rate(i: int) -> list[tuple[int, int]]:
        acked = []
        with httpx.Client(base_url=fresh.base_url, timeout=60, headers=HEADERS) as client:
            login(client, f"k{i}")
            logged_in.wait()
            while True:
                handout = send(client, "GET", "/api/comparisons/next")
                if handout.status_code == 204:
                    return acked
                assert handout.status_code == 200, handout.text
                cid = handout.json()["comparison_id"]
                key = uuid.uuid4().hex  # one vote, however often it is sent
                vote = send(
                    client,
                    "POST",
                    "/api/votes",
                    json={"comparison_id": cid, "choice": "a"},
                    headers={"Idempotency-Key": key},
                )
                assert vote.status_code in (200, 201), vote.text  # 200: an earlier try was stored
                acked.append((vote.json()["id"], cid))
                with lock:
                    acked_so_far["votes"] += 1
                    if acked_so_far["votes"] == 15 and not killed.is_set():
                        os.kill(victim, signal.SIGKILL)  # mid-load: others' requests are in flight
                        killed_at.append(time.monotonic())
                        killed.set()

    with ThreadPoolExecutor(RATERS) as pool:
        acked = [a for one in pool.map(rate, range(RATERS)) for a in one]

    assert killed.is_set()
    with fresh.session() as s:
        stored = s.exec(select(Vote)).all()
    assert sorted({vote_id for vote_id, _ in acked}) == sorted(v.id for v in stored), "a vote was lost or added"
    assert len({(v.rater_id, v.comparison_id) for v in stored}) == len(stored), "a rater voted twice on a pair"
    assert Counter(v.comparison_id for v in stored) == Counter({c.id: TARGET for c in comps})
    _restarted(fresh, 0, victim, killed_at[0])
