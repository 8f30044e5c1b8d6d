"""The Rate tab's "left for you" counter: counted after every vote, so it stops at 100 ("100+")."""

from feedback_ui.ui.rate import LEFT_SHOWN_UP_TO, left_shown
from rlhf.services.comparisons import next_for_rater, remaining_for_rater
from rlhf.services.gold import mark_gold
from rlhf.services.votes import record_vote, votes_cast
from tests import factories


def test_a_bounded_count_is_exact_below_its_bound_and_stops_at_it(session):
    alice, bob = factories.user(session, "alice"), factories.user(session, "bob")
    comps = factories.comparisons(session, [(f"x{i}", f"y{i}") for i in range(5)])
    mark_gold(session=session, comparison_id=comps[-1].id, answer="a")
    session.commit()
    assert remaining_for_rater(session=session, rater_id=alice.id) == 5
    assert remaining_for_rater(session=session, rater_id=alice.id, count_up_to=10) == 5  # gold included
    assert remaining_for_rater(session=session, rater_id=alice.id, count_up_to=3) == 3
    # Pairs another rater holds and pairs she answered leave the bounded count as they leave the exact one.
    assert next_for_rater(session=session, rater=bob).comparison_id == comps[0].id
    record_vote(session=session, rater=alice, comparison_id=comps[1].id, choice="a")
    assert remaining_for_rater(session=session, rater_id=alice.id) == 3
    assert remaining_for_rater(session=session, rater_id=alice.id, count_up_to=10) == 3
    assert remaining_for_rater(session=session, rater_id=alice.id, count_up_to=2) == 2
    assert votes_cast(session=session, rater_id=alice.id) == 1 and votes_cast(session=session, rater_id=bob.id) == 0


def test_the_counter_shows_the_count_up_to_100_and_100_plus_beyond():
    assert LEFT_SHOWN_UP_TO == 100
    assert left_shown(0) == "0" and left_shown(7) == "7" and left_shown(100) == "100"
    assert left_shown(101) == "100+"
