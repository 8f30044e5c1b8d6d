"""The statements a vote with the next pair runs on PostgreSQL, as rlhf/services/votes.py lists them.

A statement added to this path is paid on every vote; this test names each one, so such a
change is made on purpose and the list in the docs changes with it.
"""

import pytest
import sqlalchemy as sa
from sqlmodel import select

from rlhf.models import Assignment, utcnow
from rlhf.services.comparisons import LEASE, _lease, next_for_rater
from rlhf.services.rating import release_leases, vote_then_next
from tests import factories


@pytest.fixture
def statements(session):
    seen: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):
        first = " ".join(statement.split())
        if not first.upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):  # the test's own transaction
            seen.append(first)

    connection = session.connection()
    sa.event.listen(connection, "before_cursor_execute", record)
    yield seen
    sa.event.remove(connection, "before_cursor_execute", record)


# The row locks and their statements are PostgreSQL's; SQLite serialises votes with a process lock.
@pytest.mark.parametrize("rollback_db_url", ["postgresql"], indirect=True)
def test_a_vote_with_the_next_pair_runs_nine_statements(session, statements):
    rater = factories.user(session)
    first, second = factories.comparisons(session, [("x1", "y1"), ("x2", "y2")])
    session.commit()
    assert next_for_rater(session=session, rater=rater).comparison_id == first.id
    statements.clear()
    result, handout = vote_then_next(
        session=session, rater=rater, comparison_id=first.id, choice="a", idempotency_key="k1", require_handout=True
    )
    assert result.created and handout.comparison_id == second.id
    kinds = [s[:40] for s in statements]
    assert [s.split()[0] for s in statements] == [
        "SELECT",  # the lock
        "SELECT",  # the pair, the stored vote or key, the lease, the places held
        "UPDATE",  # the lease ends
        "UPDATE",  # the count (and closing)
        "INSERT",  # the vote
        "SELECT",  # the rater's live leases
        "SELECT",  # candidates, FOR UPDATE SKIP LOCKED
        "INSERT",  # the lease, if the candidate still has a place (counted again by this statement)
        "SELECT",  # the prompt and both responses
    ], kinds
    assert statements[0].endswith("FOR UPDATE") and "SKIP LOCKED" in statements[6]


def test_a_lease_is_written_only_while_the_pair_has_a_place(session):
    # The hand-out's last step on PostgreSQL: a lease committed by another rater after the
    # candidates were read must keep this rater out, and the hand-out moves on to the next pair.
    alice, bob = factories.user(session, "alice"), factories.user(session, "bob")
    (comp,) = factories.comparisons(session, [("x", "y")])
    session.commit()
    assert next_for_rater(session=session, rater=bob).comparison_id == comp.id
    expires = utcnow() + LEASE
    assert _lease(session, alice.id, comp.id, None, None, expires, lambda: 0.0, if_place_left=True) is None
    assert session.exec(select(Assignment).where(Assignment.rater_id == alice.id)).first() is None
    assert release_leases(session=session, rater_id=bob.id) == 1
    handout = _lease(session, alice.id, comp.id, None, None, expires, lambda: 0.0, if_place_left=True)
    assert handout is not None and handout.comparison_id == comp.id and handout.swapped
