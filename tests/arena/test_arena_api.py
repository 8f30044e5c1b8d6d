"""The arena's REST endpoints against a real ``transformers serve``: battles, votes, names, demonstrations,
and every bad input the issue names."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

from feedback_ui.app import create_app
from rlhf.inference import Inference
from rlhf.modeling.sampling import clean_text
from rlhf.models import Checkpoint, Comparison, ComparisonSource, Demonstration, Prompt, Response, Vote
from tests.api.conftest import basic
from tests.arena.conftest import HELLO, RATER, sse_events

pytestmark = pytest.mark.integration


def _count(session, model, *where):
    session.expire_all()
    return session.exec(select(func.count()).select_from(model).where(*where)).one()


def test_a_battle_answers_stores_and_is_voted_like_any_comparison(arena_client, session, tiny_copies):
    r = arena_client.post("/api/arena", json={"messages": HELLO}, headers=RATER)
    assert r.status_code == 201, r.text
    battle = r.json()
    # A sampled answer may be empty (the model may end at once): its type is what the API promises.
    assert set(battle) == {"comparison_id", "a", "b"} and isinstance(battle["a"], str) and isinstance(battle["b"], str)
    # Neither the checkpoint's name nor its path (the engine's ``model`` field) reaches the rater.
    assert not any(leak in r.text for leak in ("alpha", "beta", *tiny_copies))
    comp = session.get(Comparison, battle["comparison_id"])
    assert comp.source is ComparisonSource.arena
    prompt = session.get(Prompt, comp.prompt_id)
    assert prompt.messages == HELLO and prompt.source == "arena" and not prompt.in_pool
    texts = {session.get(Response, comp.response_a_id).text, session.get(Response, comp.response_b_id).text}
    assert texts == {battle["a"], battle["b"]}
    # Names only after the vote.
    assert arena_client.get(f"/api/arena/{comp.id}", headers=RATER).status_code == 403
    vote = arena_client.post("/api/votes", json={"comparison_id": comp.id, "choice": "a"}, headers=RATER)
    assert vote.status_code == 201, vote.text
    names = arena_client.get(f"/api/arena/{comp.id}", headers=RATER).json()
    assert {names["a"], names["b"]} <= {"alpha", "beta"}
    assert names["a"] == session.get(Checkpoint, session.get(Response, comp.response_a_id).checkpoint_id).name
    # Another rater may not see names of a battle they never voted on, nor vote on it.
    other = basic("other")
    assert arena_client.get(f"/api/arena/{comp.id}", headers=other).status_code == 403
    assert (
        arena_client.post("/api/votes", json={"comparison_id": comp.id, "choice": "b"}, headers=other).status_code
        == 409
    )


def test_streaming_sends_deltas_of_both_answers_then_done(arena_client, session):
    with arena_client.stream("POST", "/api/arena", json={"messages": HELLO, "stream": True}, headers=RATER) as r:
        assert r.status_code == 201 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    kinds = [e for e, _ in events]
    assert kinds[-1] == "done" and "a" in kinds and "b" in kinds and "error" not in kinds
    a = "".join(d for e, d in events if e == "a")
    b = "".join(d for e, d in events if e == "b")
    comp = session.get(Comparison, events[-1][1]["comparison_id"])
    # Stored as sent, less the control and replacement characters a byte-level model can emit.
    assert session.get(Response, comp.response_a_id).text == clean_text(a)
    assert session.get(Response, comp.response_b_id).text == clean_text(b)


def test_arena_battles_are_never_handed_out_by_the_rate_queue(arena_client, session):
    battle = arena_client.post("/api/arena", json={"messages": HELLO}, headers=RATER).json()
    assert arena_client.get("/api/comparisons/next", headers=RATER).status_code == 204
    assert arena_client.get("/api/comparisons/next", headers=basic("other")).status_code == 204
    # Voted or not, it stays out of the queue, and its prompt out of the generation pool.
    arena_client.post("/api/votes", json={"comparison_id": battle["comparison_id"], "choice": "tie"}, headers=RATER)
    assert arena_client.get("/api/comparisons/next", headers=RATER).status_code == 204
    from rlhf.jobs.generation import pick_prompts

    assert pick_prompts(session, None, None) == []


def test_a_second_turn_has_the_conversation_as_its_prompt(arena_client, session):
    first = arena_client.post("/api/arena", json={"messages": HELLO}, headers=RATER).json()
    turn2 = HELLO + [{"role": "assistant", "content": first["a"]}, {"role": "user", "content": "Why that one?"}]
    second = arena_client.post("/api/arena", json={"messages": turn2}, headers=RATER).json()
    comp = session.get(Comparison, second["comparison_id"])
    assert session.get(Prompt, comp.prompt_id).messages == turn2


def test_demonstrations_for_a_battle_become_preferences_over_both_answers(arena_client, session):
    battle = arena_client.post("/api/arena", json={"messages": HELLO}, headers=RATER).json()
    r = arena_client.post(
        "/api/demonstrations", json={"comparison_id": battle["comparison_id"], "text": "Blue."}, headers=RATER
    )
    assert r.status_code == 201, r.text
    assert r.json()["messages"] == HELLO and r.json()["text"] == "Blue."
    written = session.exec(select(Comparison).where(Comparison.source == ComparisonSource.written)).all()
    assert len(written) == (2 if battle["a"] != battle["b"] else 1)
    for comp in written:
        assert session.get(Response, comp.response_a_id).text == "Blue."
        vote = session.exec(select(Vote).where(Vote.comparison_id == comp.id)).one()
        assert vote.choice.value == "a"
    # A demonstration for a comparison the rater never saw is refused, and nothing is stored.
    before = _count(session, Demonstration)
    r = arena_client.post(
        "/api/demonstrations", json={"comparison_id": battle["comparison_id"], "text": "x"}, headers=basic("other")
    )
    assert r.status_code == 403 and "never shown" in r.json()["detail"]
    assert _count(session, Demonstration) == before
    # One of the rater's own, without a comparison.
    own = arena_client.post("/api/demonstrations", json={"messages": HELLO, "text": "Green."}, headers=RATER)
    assert own.status_code == 201 and own.json()["comparison_id"] is None
    listed = arena_client.get("/api/demonstrations", headers=basic("engineer")).json()
    assert [d["text"] for d in listed] == ["Green.", "Blue."]


@pytest.mark.parametrize(
    "messages, needle",
    [
        ([{"role": "user", "content": "   "}], "empty"),
        ([{"role": "user", "content": "x" * 4001}], "limit is 4000"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "alternate"),
        ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}], "alternate"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "last message"),
        (
            [
                m
                for i in range(9)
                for m in ({"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"})
            ][:-1],
            "limit is 8",
        ),
    ],
)
def test_bad_conversations_are_refused_with_the_reason(arena_client, session, messages, needle):
    r = arena_client.post("/api/arena", json={"messages": messages}, headers=RATER)
    assert r.status_code == 422 and needle in r.json()["detail"], r.text
    assert _count(session, Comparison) == 0


def test_too_many_battles_a_minute_is_429_with_retry_after(settings, engine, arena_world, session, monkeypatch):
    monkeypatch.setattr(settings, "arena_battles_per_minute", 2)
    with TestClient(create_app(settings, start_worker=False, inference=Inference(url=engine.url))) as client:
        for _ in range(2):
            assert client.post("/api/arena", json={"messages": HELLO}, headers=RATER).status_code == 201
        r = client.post("/api/arena", json={"messages": HELLO}, headers=RATER)
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 61
        assert "2 arena battles a minute" in r.json()["detail"]
        # Another rater has their own allowance.
        assert client.post("/api/arena", json={"messages": HELLO}, headers=basic("other")).status_code == 201
    assert _count(session, Comparison) == 3


def test_a_dead_engine_is_503_naming_it_and_stores_nothing(settings, arena_world, session):
    from rlhf.inference.engine import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    with TestClient(create_app(settings, start_worker=False, inference=Inference(url=dead))) as client:
        r = client.post("/api/arena", json={"messages": HELLO}, headers=RATER)
        assert r.status_code == 503 and dead in r.json()["detail"], r.text
        with client.stream("POST", "/api/arena", json={"messages": HELLO, "stream": True}, headers=RATER) as s:
            events = sse_events(s)
        assert [e for e, _ in events] == ["error"] and dead in events[0][1]["detail"]
    assert _count(session, Comparison) == 0 and _count(session, Response) == 0 and _count(session, Prompt) == 0


def test_a_slow_engine_times_out_with_a_visible_reason(settings, arena_world, session, fake_engine, monkeypatch):
    fake_engine.delay_s = 0.5
    monkeypatch.setattr(settings, "arena_timeout_s", 1.0)
    with TestClient(create_app(settings, start_worker=False, inference=Inference(url=fake_engine.url))) as client:
        r = client.post("/api/arena", json={"messages": HELLO}, headers=RATER)
    assert r.status_code == 503 and "within 1 s" in r.json()["detail"]
    assert _count(session, Comparison) == 0


def test_names_stay_hidden_when_reveal_is_off(settings, arena_world, fake_engine, monkeypatch):
    monkeypatch.setattr(settings, "arena_reveal", False)
    with TestClient(create_app(settings, start_worker=False, inference=Inference(url=fake_engine.url))) as client:
        battle = client.post("/api/arena", json={"messages": HELLO}, headers=RATER).json()
        client.post("/api/votes", json={"comparison_id": battle["comparison_id"], "choice": "b"}, headers=RATER)
        r = client.get(f"/api/arena/{battle['comparison_id']}", headers=RATER)
    assert r.status_code == 403 and "RLHF_ARENA_REVEAL" in r.json()["detail"]


def test_the_model_map_setting_names_the_model_the_engine_is_asked_for(settings, arena_world, fake_engine, monkeypatch):
    monkeypatch.setattr(settings, "inference_models", {"alpha": "served-alpha", "beta": "served-beta"})
    with TestClient(create_app(settings, start_worker=False, inference=Inference(url=fake_engine.url))) as client:
        assert client.post("/api/arena", json={"messages": HELLO}, headers=RATER).status_code == 201
    assert {r["model"] for r in fake_engine.requests} == {"served-alpha", "served-beta"}


def test_leaderboard_counts_arena_votes_and_filters_by_source(arena_client, session):
    battle = arena_client.post("/api/arena", json={"messages": HELLO}, headers=RATER).json()
    arena_client.post("/api/votes", json={"comparison_id": battle["comparison_id"], "choice": "a"}, headers=RATER)
    board = arena_client.get("/api/leaderboard?bootstrap=0", headers=RATER).json()
    assert board["votes"] == 1
    assert arena_client.get("/api/leaderboard?bootstrap=0&source=arena", headers=RATER).json()["votes"] == 1
    assert arena_client.get("/api/leaderboard?bootstrap=0&source=queue", headers=RATER).json()["votes"] == 0
