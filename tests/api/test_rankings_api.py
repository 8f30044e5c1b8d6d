"""Rankings over REST: handed out to clients that ask for them, ordered, taken back, passed on."""

from __future__ import annotations

import json

from sqlmodel import select

from rlhf.models import Comparison, Response, Vote
from tests import factories
from tests.api.conftest import basic


def _ranking(session, texts=("w", "x", "y", "z"), **kw):
    ranking = factories.ranking(session, list(texts), **kw)
    session.commit()
    return ranking


def _next(client, kinds="pair,ranking", name="rater"):
    return client.get("/api/comparisons/next", params={"kinds": kinds} if kinds else None, headers=basic(name))


def _pair_votes(session, ranking_id) -> dict[tuple[str, str], str]:
    session.expire_all()
    out = {}
    for vote in session.exec(select(Vote).where(Vote.ranking_id == ranking_id)):
        comp = session.get(Comparison, vote.comparison_id)
        a, b = (session.get(Response, r).text for r in (comp.response_a_id, comp.response_b_id))
        out[(a, b)] = vote.choice.value
    return out


def test_a_client_gets_rankings_only_when_it_asks_and_pairs_say_their_kind(client, session, world):
    ranking = _ranking(session)
    plain = _next(client, kinds=None)
    assert plain.status_code == 200 and plain.json()["kind"] == "pair" and "comparison_id" in plain.json()
    client.post("/api/leases/release", headers=basic("rater"))
    handed = _next(client).json()
    assert handed["kind"] == "ranking" and handed["ranking_id"] == ranking.id
    assert sorted(handed["answers"]) == ["w", "x", "y", "z"]
    assert handed["prompt"][-1] == {"role": "user", "content": "question"}
    assert _next(client).json() == handed  # asked again: the same ranking, the same order
    assert _next(client, kinds="triple").status_code == 422


def test_an_order_is_stored_as_one_vote_per_pair_and_a_repeat_changes_nothing(client, session, world):
    ranking = _ranking(session)
    answers = _next(client).json()["answers"]
    at = {text: n for n, text in enumerate(answers)}
    order = [[at["z"]], [at["x"], at["w"]], [at["y"]]]
    stored = client.post(
        "/api/rankings?next=true",
        headers=basic("rater"),
        json={"ranking_id": ranking.id, "order": order, "rationale": "z is right", "idempotency_key": "k1"},
    )
    assert stored.status_code == 201, stored.text
    body = stored.json()
    assert body["ranking"]["order"] == [[at["z"]], sorted([at["x"], at["w"]]), [at["y"]]]
    assert len(body["ranking"]["vote_ids"]) == 6 and body["ranking"]["created"] is True
    assert body["next"]["kind"] == "pair"  # the world's open pairs come after
    assert _pair_votes(session, ranking.id) == {
        ("w", "x"): "tie",
        ("w", "y"): "a",
        ("w", "z"): "b",
        ("x", "y"): "a",
        ("x", "z"): "b",
        ("y", "z"): "b",
    }
    again = client.post(
        "/api/rankings", headers=basic("rater"), json={"ranking_id": ranking.id, "order": [[0, 1, 2, 3]]}
    )
    assert again.status_code == 200 and again.json()["vote_ids"] == body["ranking"]["vote_ids"]
    assert len(_pair_votes(session, ranking.id)) == 6


def test_a_bad_order_is_422_naming_it_and_stores_nothing(client, session, world):
    ranking = _ranking(session)
    _next(client)
    for order, reason in (
        ([[0], [1], [2]], "leaves out answer 3"),
        ([[0, 1], [1], [2, 3]], "names answer 1 twice"),
        ([[0], [1], [2], [3], [7]], "names answer 7"),
        ([], "order"),
        ([["first"], [1, 2, 3]], "order"),
    ):
        refused = client.post("/api/rankings", headers=basic("rater"), json={"ranking_id": ranking.id, "order": order})
        assert refused.status_code == 422 and reason in json.dumps(refused.json()), (order, refused.text)
    assert _pair_votes(session, ranking.id) == {}
    # A ranking never handed to this rater, or not there at all.
    other = client.post(
        "/api/rankings", headers=basic("engineer"), json={"ranking_id": ranking.id, "order": [[0], [1], [2], [3]]}
    )
    assert other.status_code == 409
    missing = client.post(
        "/api/rankings", headers=basic("rater"), json={"ranking_id": ranking.id + 50, "order": [[0], [1], [2], [3]]}
    )
    assert missing.status_code == 404


def test_a_pair_of_a_ranking_cannot_be_voted_on_alone(client, session, world):
    ranking = _ranking(session)
    comp = session.exec(select(Comparison).where(Comparison.ranking_id == ranking.id)).first()
    refused = client.post("/api/votes", headers=basic("rater"), json={"comparison_id": comp.id, "choice": "a"})
    assert refused.status_code == 409 and "POST /api/rankings" in refused.text


def test_undo_hands_the_ranking_back_in_its_order_and_a_redo_is_stored(client, session, world):
    ranking = _ranking(session)
    answers = _next(client).json()["answers"]
    first = client.post(
        "/api/rankings", headers=basic("rater"), json={"ranking_id": ranking.id, "order": [[0], [1], [2], [3]]}
    ).json()
    one_vote = client.delete(f"/api/votes/{first['vote_ids'][0]}", headers=basic("rater"))
    assert one_vote.status_code == 409 and f"/api/rankings/{ranking.id}/order" in one_vote.text
    back = client.delete(f"/api/rankings/{ranking.id}/order", headers=basic("rater"))
    assert back.status_code == 200 and back.json()["answers"] == answers and back.json()["kind"] == "ranking"
    assert _pair_votes(session, ranking.id) == {}
    assert client.delete(f"/api/rankings/{ranking.id}/order", headers=basic("rater")).status_code == 404
    redo = client.post(
        "/api/rankings", headers=basic("rater"), json={"ranking_id": ranking.id, "order": [[3], [2], [1], [0]]}
    )
    assert redo.status_code == 201 and redo.json()["order"] == [[3], [2], [1], [0]]


def test_a_skipped_ranking_goes_to_others_not_back_to_the_skipper(client, session, world):
    ranking = _ranking(session)
    assert _next(client, kinds="ranking").json()["ranking_id"] == ranking.id
    skipped = client.post(f"/api/rankings/{ranking.id}/skip", headers=basic("rater"))
    assert skipped.status_code == 201 and skipped.json()["ranking_id"] == ranking.id
    assert _next(client, kinds="ranking").status_code == 204
    assert _next(client, kinds="ranking", name="engineer").json()["ranking_id"] == ranking.id


def test_a_generation_job_takes_rank_and_refuses_what_does_not_apply(client, session, world):
    made = client.post("/api/generate", headers=basic("engineer"), json={"rank": 4, "limit": 2})
    assert made.status_code in (201, 202), made.text
    assert made.json()["params"]["rank"] == 4
    for body, reason in (
        ({"rank": 7}, "rank"),
        ({"rank": 2}, "rank"),
        ({"rank": 4, "per_checkpoint": 2}, "per_checkpoint"),
        ({"rank": 4, "ask_strength": True}, "ask_strength"),
    ):
        refused = client.post("/api/generate", headers=basic("engineer"), json=body)
        assert refused.status_code == 422 and reason in refused.text, (body, refused.text)


def test_the_leaderboard_counts_a_rankings_pairs_between_checkpoints_when_asked_by_source(client, session, world):
    ranking = _ranking(session, checkpoint_names=["old", "new", "new", "old"])
    answers = _next(client).json()["answers"]
    at = {text: n for n, text in enumerate(answers)}
    # "x" and "y" (new) above "w" and "z" (old): four cross-checkpoint pairs, all won by new.
    order = [[at["x"], at["y"]], [at["w"]], [at["z"]]]
    assert client.post(
        "/api/rankings", headers=basic("rater"), json={"ranking_id": ranking.id, "order": order}
    ).is_success
    board = client.get("/api/leaderboard", params={"source": "ranking", "bootstrap": 50}, headers=basic("rater"))
    assert board.status_code == 200, board.text
    rows = {s["name"]: s for s in board.json()["standings"]}
    assert (rows["new"]["wins"], rows["old"]["losses"], board.json()["votes"]) == (4, 4, 4)
    assert rows["new"]["rating"] > rows["old"]["rating"]
