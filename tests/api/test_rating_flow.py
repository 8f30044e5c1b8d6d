"""Voting with the next pair in the same answer, undo, skip, and the rater's own count over REST."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import func, select

from feedback_ui.app import create_app
from rlhf.models import Assignment, Comparison, ComparisonStatus, Skip, Vote, utcnow
from rlhf.settings import get_settings, reset_settings_cache
from tests.api.conftest import basic


def _live_leases(session, user_id: int) -> int:
    session.expire_all()
    return session.exec(
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.rater_id == user_id, Assignment.expires_at > utcnow())
    ).one()


def test_vote_with_next_answers_the_next_pair_already_leased(client, session, world):
    rater = world.users["rater"]
    first = client.get("/api/comparisons/next", headers=basic("rater")).json()
    answer = client.post(
        "/api/votes?next=true", headers=basic("rater"), json={"comparison_id": first["comparison_id"], "choice": "a"}
    )
    assert answer.status_code == 201
    body = answer.json()
    assert set(body) == {"vote", "next"} and body["vote"]["created"] and body["vote"]["choice"] == "a"
    following = body["next"]
    assert following["comparison_id"] != first["comparison_id"] and set(following) == {
        "kind",
        "comparison_id",
        "prompt",
        "a",
        "b",
    }
    assert _live_leases(session, rater.id) == 1
    # The handed-out pair is the one GET next would give (the lease), and a vote on it is accepted.
    assert client.get("/api/comparisons/next", headers=basic("rater")).json() == following
    repeat = client.post(
        "/api/votes?next=true", headers=basic("rater"), json={"comparison_id": first["comparison_id"], "choice": "b"}
    )
    assert repeat.status_code == 200 and repeat.json()["next"] == following


def test_vote_without_next_leases_nothing(client, session, world):
    rater = world.users["rater"]
    first = client.get("/api/comparisons/next", headers=basic("rater")).json()
    answer = client.post(
        "/api/votes", headers=basic("rater"), json={"comparison_id": first["comparison_id"], "choice": "tie"}
    )
    assert answer.status_code == 201 and "next" not in answer.json()
    assert _live_leases(session, rater.id) == 0


def test_next_is_null_when_nothing_is_left(client, world):
    body = None
    for _ in range(3):
        handout = client.get("/api/comparisons/next", headers=basic("rater")).json()
        body = client.post(
            "/api/votes?next=true",
            headers=basic("rater"),
            json={"comparison_id": handout["comparison_id"], "choice": "a"},
        ).json()
    assert body["next"] is None


def test_undo_over_rest_reopens_and_hands_the_pair_back(client, session, world):
    handout = client.get("/api/comparisons/next", headers=basic("rater")).json()
    vote = client.post(
        "/api/votes?next=true", headers=basic("rater"), json={"comparison_id": handout["comparison_id"], "choice": "b"}
    ).json()["vote"]
    undone = client.delete(f"/api/votes/{vote['id']}", headers=basic("rater"))
    assert undone.status_code == 200 and undone.json() == handout
    session.expire_all()
    assert session.get(Vote, vote["id"]) is None
    assert session.get(Comparison, handout["comparison_id"]).status is ComparisonStatus.open
    assert client.get("/api/comparisons/next", headers=basic("rater")).json() == handout
    # Someone else's vote, or one already undone, is not there to undo.
    assert client.delete(f"/api/votes/{vote['id']}", headers=basic("rater")).status_code == 404
    seed_vote = session.exec(select(Vote).where(Vote.rater_id == world.seed_rater.id)).first()
    assert client.delete(f"/api/votes/{seed_vote.id}", headers=basic("rater")).status_code == 404


def test_undo_held_by_a_run_snapshot_is_409(client, session, world):
    seed_vote = session.exec(select(Vote).where(Vote.rater_id == world.seed_rater.id)).first()
    refused = client.delete(f"/api/votes/{seed_vote.id}", headers=basic("seed"))
    assert refused.status_code == 409 and f"run {world.run_id}" in refused.json()["detail"]


def test_undo_window_setting_changes_what_is_allowed(settings, monkeypatch, world):
    monkeypatch.setenv("RLHF_UNDO_WINDOW_S", "0")
    reset_settings_cache()
    with TestClient(create_app(get_settings(), start_worker=False)) as client:
        handout = client.get("/api/comparisons/next", headers=basic("rater")).json()
        vote = client.post(
            "/api/votes", headers=basic("rater"), json={"comparison_id": handout["comparison_id"], "choice": "a"}
        ).json()
        refused = client.delete(f"/api/votes/{vote['id']}", headers=basic("rater"))
    assert refused.status_code == 409 and "within 0 s" in refused.json()["detail"]


def test_skip_over_rest(client, session, world):
    handout = client.get("/api/comparisons/next", headers=basic("rater")).json()
    skipped = client.post(f"/api/comparisons/{handout['comparison_id']}/skip", headers=basic("rater"))
    assert skipped.status_code == 201 and skipped.json()["comparison_id"] == handout["comparison_id"]
    following = client.get("/api/comparisons/next", headers=basic("rater")).json()
    assert following["comparison_id"] != handout["comparison_id"]
    assert (
        client.get("/api/comparisons/next", headers=basic("engineer")).json()["comparison_id"]
        == handout["comparison_id"]
    )
    session.expire_all()
    assert session.exec(select(func.count()).select_from(Skip)).one() == 1
    assert client.post("/api/comparisons/999999/skip", headers=basic("rater")).status_code == 404
    # Three open pairs: the skipped one (now the engineer's), the one leased to her, one more.
    assert client.get("/api/stats", headers=basic("rater")).json()["left_for_you"] == 2


def test_openapi_lists_undo_skip_and_next(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "delete" in paths["/api/votes/{vote_id}"]
    assert "post" in paths["/api/comparisons/{comparison_id}/skip"]
    assert any(p["name"] == "next" for p in paths["/api/votes"]["post"]["parameters"])


def test_release_gives_the_leased_pair_to_the_next_rater(client, session, world):
    handout = client.get("/api/comparisons/next", headers=basic("rater")).json()
    released = client.post("/api/leases/release", headers=basic("rater"))
    assert released.status_code == 200 and released.json() == {"released": 1}
    assert _live_leases(session, world.users["rater"].id) == 0
    assert (
        client.get("/api/comparisons/next", headers=basic("engineer")).json()["comparison_id"]
        == handout["comparison_id"]
    )
