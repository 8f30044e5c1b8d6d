"""A vote from a rater who gave the pair back: taken only while its place is still free.

A rater who released a pair (leaving the Rate tab, ``POST /api/leases/release``), skipped it,
or let the lease run out holds no place in it any more. The pair may then be handed to
another rater; a late vote from the first must not take that rater's place, or the rater
now holding the pair is the one refused (409, target reached). A late vote is accepted
while the comparison's votes plus other raters' live leases are below its target (a rater
coming back to a pair nobody took can still vote), refused with 409 and its reason
otherwise. Gold pairs and arena battles are never refused by this rule; a repeated
submission still answers with the stored vote. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlmodel import func, select

from rlhf import db
from rlhf.errors import Conflict
from rlhf.models import Assignment, Comparison, ComparisonStatus, Role, User, Vote, utcnow
from rlhf.services import arena, gold
from rlhf.services.comparisons import next_for_rater
from rlhf.services.rating import release_leases, skip_comparison
from rlhf.services.votes import record_vote
from tests import factories
from tests.api.conftest import PASSWORD, app, basic, cheap_hashing, client, test_engine_url  # noqa: F401  (fixtures)

REFUSED = "handed to another rater"


def _raters(session, *names):
    out = [factories.user(session, name, role=Role.rater, password=PASSWORD) for name in names]
    session.commit()
    return out


def _votes(session, comparison_id: int) -> int:
    session.expire_all()
    return session.exec(select(func.count()).select_from(Vote).where(Vote.comparison_id == comparison_id)).one()


# --- over REST -------------------------------------------------------------------------------------


def test_rest_late_vote_after_release_is_refused_once_another_rater_holds_the_pair(client, session):
    """(a) Target one: A releases, B is handed the pair; A's vote is 409 with its reason, B's is 201."""
    _raters(session, "ann", "bob")
    (comp,) = factories.comparisons(session, [("left", "right")])
    assert client.get("/api/comparisons/next", headers=basic("ann")).json()["comparison_id"] == comp.id
    assert client.post("/api/leases/release", headers=basic("ann")).json() == {"released": 1}
    assert client.get("/api/comparisons/next", headers=basic("bob")).json()["comparison_id"] == comp.id

    late = client.post("/api/votes", headers=basic("ann"), json={"comparison_id": comp.id, "choice": "a"})
    assert late.status_code == 409, late.text
    assert REFUSED in late.json()["detail"] and "no more votes" in late.json()["detail"]
    held = client.post("/api/votes", headers=basic("bob"), json={"comparison_id": comp.id, "choice": "b"})
    assert held.status_code == 201, held.text
    assert _votes(session, comp.id) == 1


def test_rest_coming_back_to_a_released_pair_nobody_took_still_votes(client, session):
    """(b) Leaving the Rate tab releases the lease; back on the page, the rater's vote is stored."""
    _raters(session, "ann", "bob")
    (comp,) = factories.comparisons(session, [("left", "right")])
    assert client.get("/api/comparisons/next", headers=basic("ann")).json()["comparison_id"] == comp.id
    assert client.post("/api/leases/release", headers=basic("ann")).json() == {"released": 1}

    back = client.post("/api/votes?next=true", headers=basic("ann"), json={"comparison_id": comp.id, "choice": "a"})
    assert back.status_code == 201, back.text
    assert back.json()["next"] is None
    assert client.get("/api/comparisons/next", headers=basic("bob")).status_code == 204


def test_rest_late_vote_after_skip_is_refused_once_another_rater_holds_the_pair(client, session):
    """(c) A skip gives the place back like a release: B takes it, A's vote is 409, B's is 201."""
    _raters(session, "ann", "bob")
    (comp,) = factories.comparisons(session, [("left", "right")])
    assert client.get("/api/comparisons/next", headers=basic("ann")).json()["comparison_id"] == comp.id
    assert client.post(f"/api/comparisons/{comp.id}/skip", headers=basic("ann")).status_code == 201
    assert client.get("/api/comparisons/next", headers=basic("bob")).json()["comparison_id"] == comp.id

    late = client.post("/api/votes", headers=basic("ann"), json={"comparison_id": comp.id, "choice": "a"})
    assert late.status_code == 409, late.text
    assert REFUSED in late.json()["detail"]
    held = client.post("/api/votes", headers=basic("bob"), json={"comparison_id": comp.id, "choice": "b"})
    assert held.status_code == 201, held.text


# --- the service -----------------------------------------------------------------------------------


def test_the_rater_holding_the_lease_is_never_refused(session):
    """(d) Whoever gave the pair back, by release, skip or an expired lease, the holder's vote is stored."""
    ann, cat, dan, bob = _raters(session, "ann", "cat", "dan", "bob")
    (comp,) = factories.comparisons(session, [("x", "y")])
    for rater in (ann, cat, dan):
        assert next_for_rater(session=session, rater=rater).comparison_id == comp.id
        if rater is ann:
            release_leases(session=session, rater_id=ann.id)
        elif rater is cat:
            skip_comparison(session=session, rater=cat, comparison_id=comp.id)
        else:  # dan's lease ran out
            lease = session.exec(select(Assignment).where(Assignment.rater_id == dan.id)).one()
            lease.expires_at = utcnow() - timedelta(seconds=1)
            session.add(lease)
        session.commit()
    assert next_for_rater(session=session, rater=bob).comparison_id == comp.id

    for late in (ann, cat, dan):
        with pytest.raises(Conflict, match=REFUSED):
            record_vote(session=session, rater=late, comparison_id=comp.id, choice="a")
    assert record_vote(session=session, rater=bob, comparison_id=comp.id, choice="b").created
    session.refresh(comp)
    assert comp.vote_count == 1 and comp.status is ComparisonStatus.closed


def test_with_target_three_a_late_vote_is_taken_while_votes_and_others_leases_are_below_it(session):
    """(e) Two of three places leased to others: one late vote fits, the next does not, the holders vote."""
    ann, dan, bob, cat = _raters(session, "ann", "dan", "bob", "cat")
    (comp,) = factories.comparisons(session, [("x", "y")], target_votes=3)
    for rater in (ann, dan):
        assert next_for_rater(session=session, rater=rater).comparison_id == comp.id
        release_leases(session=session, rater_id=rater.id)
        session.commit()
    for rater in (bob, cat):
        assert next_for_rater(session=session, rater=rater).comparison_id == comp.id

    assert record_vote(session=session, rater=ann, comparison_id=comp.id, choice="a").created  # 0 + 2 < 3
    with pytest.raises(Conflict, match=REFUSED):  # 1 vote + 2 leases: no place left
        record_vote(session=session, rater=dan, comparison_id=comp.id, choice="a")
    assert record_vote(session=session, rater=bob, comparison_id=comp.id, choice="b").created
    assert record_vote(session=session, rater=cat, comparison_id=comp.id, choice="tie").created
    session.refresh(comp)
    assert comp.vote_count == 3 and comp.status is ComparisonStatus.closed


def test_a_late_vote_refused_leaves_the_pair_as_it_was(session):
    """The refusal stores nothing and ends no lease: the holder keeps the pair on reload."""
    ann, bob = _raters(session, "ann", "bob")
    (comp,) = factories.comparisons(session, [("x", "y")])
    next_for_rater(session=session, rater=ann)
    release_leases(session=session, rater_id=ann.id)
    session.commit()
    held = next_for_rater(session=session, rater=bob)
    with pytest.raises(Conflict, match=REFUSED):
        record_vote(session=session, rater=ann, comparison_id=comp.id, choice="a")
    assert _votes(session, comp.id) == 0
    assert next_for_rater(session=session, rater=bob) == held


def test_a_skipped_pair_nobody_took_can_still_be_voted_on(session):
    """A skip is "not for me", not a promise never to vote: with its place free, the vote is stored."""
    ann, bob = _raters(session, "ann", "bob")
    (comp,) = factories.comparisons(session, [("x", "y")])
    next_for_rater(session=session, rater=ann)
    skip_comparison(session=session, rater=ann, comparison_id=comp.id)
    session.commit()
    assert record_vote(session=session, rater=ann, comparison_id=comp.id, choice="a").created
    assert next_for_rater(session=session, rater=bob) is None


def test_a_repeat_of_a_stored_vote_answers_with_it_even_when_the_pair_is_held_by_others(session):
    """A retry after the lease ended (the vote ends it) is the stored vote, never a 409."""
    ann, bob = _raters(session, "ann", "bob")
    (comp,) = factories.comparisons(session, [("x", "y")], target_votes=2)
    next_for_rater(session=session, rater=ann)
    first = record_vote(session=session, rater=ann, comparison_id=comp.id, choice="a", idempotency_key="k")
    assert next_for_rater(session=session, rater=bob).comparison_id == comp.id  # 1 vote + bob's lease = 2
    again = record_vote(session=session, rater=ann, comparison_id=comp.id, choice="b", idempotency_key="k")
    assert not again.created and again.vote.id == first.vote.id
    assert record_vote(session=session, rater=bob, comparison_id=comp.id, choice="b").created


def test_gold_pairs_take_a_late_vote_from_every_rater(session):
    """Gold pairs never close and hold no places: a rater who gave one back still votes on it."""
    ann, bob = _raters(session, "ann", "bob")
    (comp,) = factories.comparisons(session, [("x", "y")])
    gold.mark_gold(session=session, comparison_id=comp.id, answer="a")
    session.add(Assignment(comparison_id=comp.id, rater_id=ann.id, swapped=False, expires_at=utcnow()))
    session.add(
        Assignment(comparison_id=comp.id, rater_id=bob.id, swapped=False, expires_at=utcnow() + timedelta(minutes=5))
    )
    session.commit()
    assert record_vote(session=session, rater=ann, comparison_id=comp.id, choice="a").created
    assert record_vote(session=session, rater=bob, comparison_id=comp.id, choice="a").created


def test_an_arena_battle_takes_its_raters_vote_after_the_rate_tab_released_it(session, settings):
    """Leaving the Rate tab releases every lease, the battle's too; the battle is still the rater's to vote on."""
    import random

    from rlhf.inference.client import Completion
    from rlhf.services.checkpoints import register_checkpoint

    (ann,) = _raters(session, "ann")
    register_checkpoint(session=session, path="org/x", name="x", serve=True)
    register_checkpoint(session=session, path="org/y", name="y", serve=True)
    plan = arena.plan_battle(
        session=session,
        rater=ann,
        messages=[{"role": "user", "content": "Hi?"}],
        settings=settings,
        rng=random.Random(0),
    )
    battle = arena.store_battle(
        session=session, rater=ann, plan=plan, answers=(Completion("one", True), Completion("two", True)), ttl_s=60
    )
    session.commit()
    assert release_leases(session=session, rater_id=ann.id) == 1
    session.commit()
    assert record_vote(
        session=session, rater=ann, comparison_id=battle.id, choice="b", idempotency_key="arena-1"
    ).created


def test_late_votes_racing_hand_outs_never_take_the_holders_place(db_url, settings):
    """One rater votes late on every pair she gave back while another is handed them and votes:
    the one handed a pair is never refused, and no pair gets more votes than its target."""
    engine = db.get_engine(db_url)
    with db.session_scope(engine) as s:
        ann, bob = _raters(s, "ann", "bob")
        comps = factories.comparisons(s, [(f"a{i}", f"b{i}") for i in range(12)])
        for comp in comps:  # ann was handed every pair and gave each back
            s.add(Assignment(comparison_id=comp.id, rater_id=ann.id, swapped=False, expires_at=utcnow()))
        s.commit()
        ann_id, bob_id, ids = ann.id, bob.id, [c.id for c in comps]
    start = threading.Barrier(2)

    def late_votes() -> int:
        start.wait()
        stored = 0
        for cid in ids:
            with db.session_scope(engine) as s:
                try:
                    stored += record_vote(session=s, rater=s.get(User, ann_id), comparison_id=cid, choice="a").created
                except Conflict:
                    pass
        return stored

    def holder() -> int:
        start.wait()
        stored = 0
        while True:
            with db.session_scope(engine) as s:
                rater = s.get(User, bob_id)
                handout = next_for_rater(session=s, rater=rater)
                if handout is None:
                    return stored
                stored += record_vote(
                    session=s, rater=rater, comparison_id=handout.comparison_id, choice="b"
                ).created  # a Conflict here fails the test

    with ThreadPoolExecutor(2) as pool:
        late, held = pool.submit(late_votes), pool.submit(holder)
        late_count, held_count = late.result(timeout=120), held.result(timeout=120)
    with db.session_scope(engine) as s:
        counts = [s.get(Comparison, cid).vote_count for cid in ids]
        assert s.exec(select(func.count()).select_from(Vote)).one() == len(ids)
    assert counts == [1] * len(ids) and late_count + held_count == len(ids)


def test_simulated_raters_leave_a_pair_whose_places_people_hold(session):
    """`rlhf simulate` votes without a lease: where a person holds the last place, it moves on."""
    from rlhf.services.simulate import simulate

    (person,) = _raters(session, "person")
    held, free = factories.comparisons(session, [("Please sit.", "Sit."), ("Please wait.", "Wait.")])
    session.commit()
    held_id = next_for_rater(session=session, rater=person).comparison_id
    counts = simulate(session=session, rule="contains:please")
    session.commit()
    assert counts["votes"] == 1
    assert {v.comparison_id for v in session.exec(select(Vote)).all()} == {({held.id, free.id} - {held_id}).pop()}
    assert record_vote(session=session, rater=person, comparison_id=held_id, choice="a").created
