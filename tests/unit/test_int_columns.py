"""Integer columns read straight into an array: PostgreSQL's binary COPY, else a cursor."""

import numpy as np
import pytest
import sqlalchemy as sa
from sqlmodel import col

from rlhf.models import Vote
from rlhf.services.int_columns import int_columns, parse_binary_copy
from rlhf.services.votes import record_vote
from tests import factories


def test_the_columns_come_back_as_stored_in_query_order(session):
    alice, bob = factories.user(session), factories.user(session, "bob")
    comps = factories.comparisons(session, [(f"a{i}", f"b{i}") for i in range(3)], target_votes=2)
    for rater, comp in [(bob, comps[2]), (alice, comps[0]), (alice, comps[2]), (bob, comps[1])]:
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a", as_shown=False)
    query = sa.select(col(Vote.comparison_id), col(Vote.rater_id), sa.literal(-7)).order_by(col(Vote.id))
    got = int_columns(session, query)
    expected = [[comps[2].id, bob.id, -7], [comps[0].id, alice.id, -7], [comps[2].id, alice.id, -7]]
    assert got.dtype == np.int64 and got.tolist() == expected + [[comps[1].id, bob.id, -7]]
    assert int_columns(session, query.where(col(Vote.id) < 0)).shape == (0, 3)


def _copy(*rows, width=2, length=8):
    head = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    body = b"".join(
        width.to_bytes(2, "big") + b"".join(length.to_bytes(4, "big") + v.to_bytes(8, "big", signed=True) for v in r)
        for r in rows
    )
    return head + body + b"\xff\xff"


def test_a_binary_copy_is_parsed_and_anything_else_refused():
    assert parse_binary_copy(_copy((1, -2), (2**40, 3)), 2).tolist() == [[1, -2], [2**40, 3]]
    assert parse_binary_copy(_copy(), 2).shape == (0, 2)
    with pytest.raises(ValueError, match="not a binary COPY"):
        parse_binary_copy(b"1\t2\n", 2)
    with pytest.raises(ValueError, match="layout"):
        parse_binary_copy(_copy((1, 2), width=3), 2)  # a row that claims another field count
    with pytest.raises(ValueError, match="layout"):
        parse_binary_copy(_copy((1, 2), length=4), 2)  # a field that is not 8 bytes
