"""Integer columns read straight into an array: PostgreSQL's binary arrays, else a cursor."""

import numpy as np
import pytest
import sqlalchemy as sa
from sqlmodel import col

from rlhf.models import Vote
from rlhf.services.int_columns import int_columns, parse_int8_array
from rlhf.services.votes import record_vote
from tests import factories


def test_the_columns_come_back_as_stored_and_row_by_row_aligned(session):
    alice, bob = factories.user(session), factories.user(session, "bob")
    comps = factories.comparisons(session, [(f"a{i}", f"b{i}") for i in range(3)], target_votes=2)
    for rater, comp in [(bob, comps[2]), (alice, comps[0]), (alice, comps[2]), (bob, comps[1])]:
        record_vote(session=session, rater=rater, comparison_id=comp.id, choice="a", as_shown=False)
    query = sa.select(col(Vote.comparison_id), col(Vote.rater_id), sa.literal(-7)).order_by(col(Vote.id))
    got = int_columns(session, query)
    expected = [[comps[2].id, bob.id, -7], [comps[0].id, alice.id, -7], [comps[2].id, alice.id, -7]]
    assert got.dtype == np.int64 and sorted(got.tolist()) == sorted(expected + [[comps[1].id, bob.id, -7]])
    assert int_columns(session, query.where(col(Vote.id) < 0)).shape == (0, 3)


def _array(*values, oid=20, nulls=0, length=8, count=None):
    head = [1, nulls, oid, len(values) if count is None else count, 1]
    body = b"".join(length.to_bytes(4, "big") + v.to_bytes(8, "big", signed=True) for v in values)
    return b"".join(x.to_bytes(4, "big") for x in head) + body


def test_a_binary_int8_array_is_parsed_and_anything_else_refused():
    assert parse_int8_array(_array(1, -2, 2**40)).tolist() == [1, -2, 2**40]
    assert parse_int8_array(_array()).shape == (0,)
    with pytest.raises(ValueError, match="one-dimensional int8"):
        parse_int8_array(b"{1,2}")
    with pytest.raises(ValueError, match="one-dimensional int8"):
        parse_int8_array(_array(1, oid=23))  # int4 elements
    with pytest.raises(ValueError, match="one-dimensional int8"):
        parse_int8_array(_array(1, nulls=1))
    with pytest.raises(ValueError, match="length"):
        parse_int8_array(_array(1, 2, count=3))
    with pytest.raises(ValueError, match="not 8 bytes"):
        parse_int8_array(_array(1, length=4))
