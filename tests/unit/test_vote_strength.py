"""A vote's strength: what is accepted, how it reaches the rows, and how a majority combines it."""

from __future__ import annotations

import pytest

from rlhf.dataset_rows import PreferenceRow, combined_strength, strength_margin
from rlhf.errors import InvalidInput
from rlhf.models import Choice, Strength
from rlhf.services.dataset import preference_rows
from rlhf.services.votes import parse_strength, record_vote
from tests import factories


def test_a_strength_is_a_level_by_number_or_name_on_a_or_b_only():
    assert [parse_strength(s, Choice.a) for s in (1, "2", "much", Strength.clearly, None)] == [1, 2, 3, 2, None]
    for bad in (0, 4, "huge", True, 2.5):
        with pytest.raises(InvalidInput, match="strength must be one of 1 \\(slightly\\), 2 \\(clearly\\)"):
            parse_strength(bad, Choice.b)
    for choice in (Choice.tie, Choice.both_bad):
        with pytest.raises(InvalidInput, match=f"a {choice.value} vote has none"):
            parse_strength(1, choice)


def test_a_majority_row_takes_the_lower_middle_strength_of_its_label_votes():
    assert combined_strength([]) is None and combined_strength([None, None]) is None
    assert combined_strength([3]) == 3
    assert combined_strength([3, 1]) == 1  # two said: the lower claims no more than half of them said
    assert combined_strength([1, 3, 2, None]) == 2
    assert [strength_margin(s) for s in (None, 1, 2, 3)] == [0.0, 1 / 3, 2 / 3, 1.0]
    assert strength_margin(2, margins=(0.0, 5.0, 9.0)) == 5.0


def test_rows_carry_the_strength_per_vote_and_by_majority(session):
    raters = [factories.user(session, f"r{i}") for i in range(3)]
    comps = factories.comparisons(session, [("x", "y"), ("p", "q")], target_votes=3)
    for rater, (choice, strength) in zip(raters, [("a", 3), ("a", 2), ("b", 1)], strict=True):
        record_vote(
            session=session, rater=rater, comparison_id=comps[0].id, choice=choice, strength=strength, as_shown=False
        )
    record_vote(session=session, rater=raters[0], comparison_id=comps[1].id, choice="tie", as_shown=False)
    by_majority = preference_rows(session=session, exclude_flagged=False, ties="keep")
    assert [(r["comparison_id"], r["strength"]) for r in by_majority] == [(comps[0].id, 2), (comps[1].id, None)]
    per_vote = preference_rows(session=session, exclude_flagged=False, aggregate="none")
    assert [r["strength"] for r in per_vote] == [3, 2, 1]


def test_a_row_refuses_a_strength_out_of_range_or_on_a_tie():
    row = {
        "prompt": [{"role": "user", "content": "q"}],
        "chosen": [{"role": "assistant", "content": "a"}],
        "rejected": [{"role": "assistant", "content": "b"}],
        "comparison_id": 1,
        "source": "queue",
        "vote_id": 1,
        "rater_id": 1,
        "label_p": 0.9,
        "rationales": [],
    }
    assert PreferenceRow.model_validate({**row, "strength": 3}).model_dump()["strength"] == 3
    assert PreferenceRow.model_validate(row).model_dump()["strength"] is None  # always written
    for bad in ({"strength": 4}, {"strength": 1, "tie": True}):
        with pytest.raises(ValueError, match="a strength is 1, 2 or 3"):
            PreferenceRow.model_validate({**row, **bad})


def test_the_rate_tab_asks_on_every_pair_or_on_the_pairs_of_a_job_that_asked(session):
    from rlhf.services.generation_jobs import create_generation_job
    from rlhf.services.rating import strength_asked

    plain, asking = factories.comparisons(session, [("x", "y"), ("p", "q")], serve=True)
    job = create_generation_job(session=session, ask_strength=True)
    other = create_generation_job(session=session)
    assert job.params["ask_strength"] is True and other.params["ask_strength"] is False
    asking.job_id, plain.job_id = job.id, other.id
    session.add_all([asking, plain])
    session.flush()
    assert strength_asked(session=session, comparison_id=asking.id, everywhere=False)
    assert not strength_asked(session=session, comparison_id=plain.id, everywhere=False)
    assert strength_asked(session=session, comparison_id=plain.id, everywhere=True)


def test_simulated_raters_say_how_much_better_from_how_far_apart_the_rule_finds_the_two(session):
    from sqlmodel import select

    from rlhf.models import Vote
    from rlhf.services.simulate import parse_strength_rule, simulate

    by_length = parse_strength_rule("longer")
    assert [by_length("x" * 100, "x" * n) for n in (90, 70, 10)] == [Strength.slightly, Strength.clearly, Strength.much]
    by_word = parse_strength_rule("contains:please")
    assert by_word("please", "no") == Strength.clearly and by_word("please, please", "no") == Strength.much
    with pytest.raises(InvalidInput, match="unknown rule"):
        parse_strength_rule("kinder")

    pairs = [("x" * 100, "x" * 95), ("x" * 100, "x" * 50), ("same", "same")]
    comps = factories.comparisons(session, pairs)
    counts = simulate(session=session, rule="longer", strength=True)
    assert counts["votes"] == 3 and counts["strength_1"] == 1 and counts["strength_3"] == 1
    stored = {v.comparison_id: (v.choice.value, v.strength) for v in session.exec(select(Vote))}
    assert stored == {comps[0].id: ("a", 1), comps[1].id: ("a", 3), comps[2].id: ("tie", None)}


def test_without_strength_simulated_votes_say_none(session):
    from sqlmodel import select

    from rlhf.models import Vote
    from rlhf.services.simulate import simulate

    factories.comparisons(session, [("x" * 100, "x" * 10)])
    assert "strength_3" not in simulate(session=session, rule="longer")
    assert [v.strength for v in session.exec(select(Vote))] == [None]
