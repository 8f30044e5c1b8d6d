"""How much better: a strength sent with the vote, or set on it within the undo window, over REST."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import select

from rlhf.models import Vote
from tests.api.conftest import basic


def _handed(client, name="rater") -> int:
    return client.get("/api/comparisons/next", headers=basic(name)).json()["comparison_id"]


def test_a_strength_rides_on_the_vote_and_is_stored_as_sent(client, session, world):
    cid = _handed(client)
    answer = client.post(
        "/api/votes", headers=basic("rater"), json={"comparison_id": cid, "choice": "b", "strength": 3}
    )
    assert answer.status_code == 201 and answer.json()["strength"] == 3
    session.expire_all()
    stored = session.exec(select(Vote).where(Vote.comparison_id == cid)).one()
    assert stored.strength == 3
    # The strength says how much better the chosen answer is, whichever side it was shown on.
    assert (stored.choice.value == "b") != stored.shown_swapped
    plain = client.post("/api/votes", headers=basic("rater"), json={"comparison_id": _handed(client), "choice": "a"})
    assert plain.status_code == 201 and plain.json()["strength"] is None


def test_a_strength_that_means_nothing_is_422_and_stores_nothing(client, session, world):
    cid = _handed(client)
    for body, reason in (
        ({"choice": "tie", "strength": 1}, "a tie vote has none"),
        ({"choice": "both_bad", "strength": 2}, "a both_bad vote has none"),
        ({"choice": "a", "strength": 4}, "strength"),
        ({"choice": "a", "strength": 0}, "strength"),
        ({"choice": "a", "strength": "much"}, "strength"),
    ):
        refused = client.post("/api/votes", headers=basic("rater"), json={"comparison_id": cid, **body})
        assert refused.status_code == 422 and reason in json.dumps(refused.json()), body
    session.expire_all()
    assert session.exec(select(Vote).where(Vote.comparison_id == cid)).first() is None


def test_patch_sets_and_clears_the_strength_within_the_undo_window(client, session, world):
    vote = client.post(
        "/api/votes", headers=basic("rater"), json={"comparison_id": _handed(client), "choice": "a"}
    ).json()
    set_ = client.patch(f"/api/votes/{vote['id']}", headers=basic("rater"), json={"strength": 2})
    assert set_.status_code == 200 and set_.json()["strength"] == 2 and set_.json()["choice"] == "a"
    session.expire_all()
    assert session.get(Vote, vote["id"]).strength == 2
    cleared = client.patch(f"/api/votes/{vote['id']}", headers=basic("rater"), json={"strength": None})
    assert cleared.status_code == 200 and cleared.json()["strength"] is None
    # Another rater's vote is not there for them; a bad level is 422; a tie takes none.
    assert client.patch(f"/api/votes/{vote['id']}", headers=basic("engineer"), json={"strength": 1}).status_code == 404
    assert client.patch(f"/api/votes/{vote['id']}", headers=basic("rater"), json={"strength": 9}).status_code == 422
    assert client.patch(f"/api/votes/{vote['id']}", headers=basic("rater"), json={}).status_code == 422
    tie = client.post(
        "/api/votes", headers=basic("rater"), json={"comparison_id": _handed(client), "choice": "tie"}
    ).json()
    refused = client.patch(f"/api/votes/{tie['id']}", headers=basic("rater"), json={"strength": 1})
    assert refused.status_code == 422 and "tie vote has none" in refused.json()["detail"]


def test_patch_after_the_window_or_on_a_frozen_vote_is_409(client, session, world):
    vote = client.post(
        "/api/votes", headers=basic("rater"), json={"comparison_id": _handed(client), "choice": "b"}
    ).json()
    stored = session.get(Vote, vote["id"])
    stored.created_at = stored.created_at - timedelta(hours=1)
    session.add(stored)
    session.commit()
    late = client.patch(f"/api/votes/{vote['id']}", headers=basic("rater"), json={"strength": 1})
    assert late.status_code == 409 and "too late" in late.json()["detail"]
    frozen = session.exec(select(Vote).where(Vote.rater_id == world.seed_rater.id)).first()
    held = client.patch(f"/api/votes/{frozen.id}", headers=basic("seed"), json={"strength": 1})
    assert held.status_code == 409 and f"run {world.run_id}" in held.json()["detail"]
    session.expire_all()
    assert session.get(Vote, frozen.id).strength is None and session.get(Vote, vote["id"]).strength is None


def test_the_export_carries_strength_always_and_margins_when_asked(client, world):
    for i, (choice, strength) in enumerate((("a", 3), ("b", None), ("a", 1))):
        body = {"comparison_id": _handed(client), "choice": choice, **({"strength": strength} if strength else {})}
        assert client.post("/api/votes", headers=basic("rater"), json=body).status_code == 201, i
    plain = [json.loads(x) for x in client.get("/api/export", headers=basic("engineer")).text.splitlines()]
    assert plain and all("strength" in r and "margin" not in r for r in plain)
    assert sorted((r["strength"] or 0) for r in plain) == [0, 0, 0, 0, 1, 3]  # the seed's three say none
    with_margins = client.get("/api/export?margins=true", headers=basic("engineer")).text.splitlines()
    margins = sorted(json.loads(x)["margin"] for x in with_margins)
    assert margins == [0.0, 0.0, 0.0, 0.0, 1 / 3, 1.0]
