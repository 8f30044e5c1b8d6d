"""Feedback quality through the API: k raters per pair under concurrency, gold checks that flag a
careless rater end to end, and the data a run or an export is built from."""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import select

from rlhf.models import Comparison, Vote
from rlhf.services.votes import record_vote
from tests import factories
from tests.api.conftest import bearer


def test_three_raters_per_pair_with_six_raters_at_once(client, app, session):
    comps = factories.comparisons(session, [(f"a{i}", f"b{i}") for i in range(8)], target_votes=3)
    raters = [factories.user(session, f"r{i}") for i in range(6)]
    session.commit()
    headers = [bearer(app, r) for r in raters]
    start = threading.Barrier(len(raters))

    def rate(h: dict) -> list[int]:
        start.wait()
        seen = []
        while True:
            handout = client.get("/api/comparisons/next", headers=h)
            if handout.status_code == 204:
                return seen
            cid = handout.json()["comparison_id"]
            assert client.post("/api/votes", headers=h, json={"comparison_id": cid, "choice": "a"}).status_code == 201
            seen.append(cid)

    with ThreadPoolExecutor(len(raters)) as pool:
        per_rater = list(pool.map(rate, headers))

    assert all(len(s) == len(set(s)) for s in per_rater), "a rater was handed a pair twice"
    session.expire_all()
    votes = Counter(v.comparison_id for v in session.exec(select(Vote)))
    assert votes == Counter({c.id: 3 for c in comps})
    counts = {c.id: c.vote_count for c in session.exec(select(Comparison))}
    assert counts == {c.id: 3 for c in comps}
    engineer = factories.user(session, "eng", "engineer")
    session.commit()
    stats = client.get("/api/stats", headers=bearer(app, engineer))
    assert stats.json()["quality"]["vote_counts"] == {"3": 8}
    # Everyone chose "a" as shown; shown orders differ, so stored answers disagree as often as orders did.
    assert stats.json()["quality"]["overlap_comparisons"] == 8


def _answer_as_shown(handout: dict, right_text: str) -> str:
    return "a" if handout["a"] == right_text else "b"


def test_gold_pairs_flag_a_careless_rater_and_leave_their_votes_out(client, app, session, monkeypatch, settings):
    monkeypatch.setattr(settings, "gold_rate", 0.5)
    monkeypatch.setattr(settings, "gold_min_answered", 3)
    engineer = bearer(app, factories.user(session, "eng", "engineer"))
    factories.comparisons(session, [(f"long answer {i}", f"short {i}") for i in range(30)], target_votes=2, serve=True)
    careful, careless = factories.user(session, "careful"), factories.user(session, "careless")
    session.commit()
    lines = [
        json.dumps({"prompt": f"gold question {i}", "a": f"right {i}", "b": f"wrong {i}", "answer": "a"})
        for i in range(6)
    ]
    up = client.post(
        "/api/gold/upload",
        headers=engineer,
        files={"file": ("gold.jsonl", "\n".join(lines).encode(), "application/jsonl")},
    )
    assert up.status_code == 201, up.text
    gold_ids = set(up.json()["comparison_ids"])

    def rate(who, right: bool) -> Counter:
        h, seen = bearer(app, who), Counter()
        for _ in range(40):
            handout = client.get("/api/comparisons/next", headers=h)
            if handout.status_code == 204:
                break
            body = handout.json()
            is_gold = body["comparison_id"] in gold_ids
            seen["gold" if is_gold else "regular"] += 1
            if is_gold:
                right_text = next(t for t in (body["a"], body["b"]) if t.startswith("right"))
                choice = _answer_as_shown(body, right_text)
                choice = choice if right else {"a": "b", "b": "a"}[choice]
            else:  # both prefer the long answer on regular pairs
                choice = "a" if body["a"].startswith("long") else "b"
            r = client.post("/api/votes", headers=h, json={"comparison_id": body["comparison_id"], "choice": choice})
            assert r.status_code == 201, r.text
        return seen

    seen_careful, seen_careless = rate(careful, True), rate(careless, False)
    # Gold looks like any other pair and is mixed in at about the set rate (seeded by chance, so loosely).
    assert seen_careful["gold"] >= 3 and seen_careless["gold"] >= 3
    quality = client.get("/api/stats", headers=engineer).json()["quality"]
    by_name = {r["name"]: r for r in quality["raters"]}
    assert by_name["careful"]["gold_accuracy"] == 1.0 and not by_name["careful"]["flagged"]
    assert by_name["careless"]["gold_accuracy"] == 0.0 and by_name["careless"]["flagged"]
    assert quality["flagged"] == [careless.id]
    # Gold pairs never close: both raters answered the same gold pairs.
    session.expire_all()
    assert all(c.status.value == "open" for c in session.exec(select(Comparison).where(Comparison.is_gold)))

    rows = [json.loads(line) for line in client.get("/api/export", headers=engineer).text.splitlines()]
    assert rows and all(careless.id not in r["rater_ids"] for r in rows)
    assert all(r["comparison_id"] not in gold_ids for r in rows)
    kept = [
        json.loads(line) for line in client.get("/api/export?exclude_flagged=false", headers=engineer).text.splitlines()
    ]
    assert any(careless.id in r["rater_ids"] for r in kept)

    run = client.post("/api/runs", headers=engineer, json={"algorithm": "dpo", "params": {"steps": 1}})
    assert run.status_code == 202, run.text
    snapshot = run.json()["snapshot"]
    assert snapshot["left_out_raters"] == {"excluded": [], "flagged": [careless.id]}
    assert snapshot["aggregate"] == "majority" and snapshot["gold_left_out"] is True


def test_an_excluded_rater_is_left_out_until_included_again(client, app, session):
    engineer = bearer(app, factories.user(session, "eng", "engineer"))
    comps = factories.comparisons(session, [("x", "y"), ("p", "q")])
    alice, bob = factories.user(session, "alice"), factories.user(session, "bob")
    record_vote(session=session, rater=alice, comparison_id=comps[0].id, choice="a", as_shown=False)
    record_vote(session=session, rater=bob, comparison_id=comps[1].id, choice="b", as_shown=False)

    def raters() -> set[int]:
        lines = client.get("/api/export", headers=engineer).text.splitlines()
        return {i for line in lines for i in json.loads(line)["rater_ids"]}

    assert raters() == {alice.id, bob.id}
    r = client.put(f"/api/users/{bob.id}/excluded", headers=engineer, json={"excluded": True})
    assert r.status_code == 200 and r.json()["excluded"] is True
    assert raters() == {alice.id}
    client.put(f"/api/users/{bob.id}/excluded", headers=engineer, json={"excluded": False})
    assert raters() == {alice.id, bob.id}


@pytest.mark.parametrize(
    "line, error",
    [
        ('{"prompt": "q", "a": "x", "b": "y", "answer": "c"}', "line 2: answer 'c' names neither response"),
        ('{"prompt": "q", "a": "x", "b": "y"}', "line 2: missing 'answer'"),
        ('{"prompt": "q", "chosen": "x"}', "line 2: 'rejected' must be a non-empty string"),
        ('{"prompt": "q", "a": "same", "b": "same", "answer": "a"}', "line 2: the two responses are the same"),
        ("not json", "line 2: invalid JSON"),
    ],
)
def test_a_bad_gold_line_is_named_and_nothing_is_imported(client, app, session, line, error):
    engineer = bearer(app, factories.user(session, "eng", "engineer"))
    session.commit()
    good = '{"prompt": "2+2?", "chosen": "4", "rejected": "5"}'
    r = client.post(
        "/api/gold/upload",
        headers=engineer,
        files={"file": ("g.jsonl", f"{good}\n{line}\n".encode(), "application/jsonl")},
    )
    assert r.status_code == 422 and error in r.json()["detail"]
    session.expire_all()
    assert session.exec(select(Comparison)).all() == []


def test_marking_gold_reopens_a_pair_and_unmarking_closes_it_again(client, app, session):
    engineer = bearer(app, factories.user(session, "eng", "engineer"))
    (comp,) = factories.comparisons(session, [("x", "y")])
    record_vote(session=session, rater=factories.user(session), comparison_id=comp.id, choice="a", as_shown=False)
    marked = client.post(f"/api/comparisons/{comp.id}/gold", headers=engineer, json={"answer": "b"}).json()
    assert (marked["is_gold"], marked["gold_choice"], marked["status"]) == (True, "b", "open")
    unmarked = client.post(f"/api/comparisons/{comp.id}/gold", headers=engineer, json={"answer": None}).json()
    assert (unmarked["is_gold"], unmarked["status"]) == (False, "closed")
    assert client.post("/api/comparisons/999/gold", headers=engineer, json={"answer": "a"}).status_code == 404
    bad = client.post(f"/api/comparisons/{comp.id}/gold", headers=engineer, json={"answer": "left"})
    assert bad.status_code == 422
