"""An AI judge's audit against people: agreement, κ, position consistency, length bias, and its label_p."""

from __future__ import annotations

import random

import pytest

from rlhf.models import Choice, Comparison, Judge, JudgeVerdict, Prompt, Response, Role, User, Vote, VoteKind
from rlhf.services.judge_audit import audit, cohen_kappa, judge_label_ps


def _users(session, names, role=Role.rater):
    users = [User(name=n, role=role, password_hash="!", active=not role.never_logs_in) for n in names]
    session.add_all(users)
    session.flush()
    return users


def _judge(session, name):
    (user,) = _users(session, [f"judge-{name}"], Role.judge)
    judge = Judge(name=name, user_id=user.id, url="http://judge.test/v1", model="m")
    session.add(judge)
    session.flush()
    return judge


def _pairs(session, texts, gold=None):
    """One comparison per (text_a, text_b), all on one prompt; ``gold``: each one's known answer."""
    prompt = Prompt(messages=[{"role": "user", "content": "question"}])
    session.add(prompt)
    session.flush()
    responses = [Response(prompt_id=prompt.id, text=t) for pair in texts for t in pair]
    session.add_all(responses)
    session.flush()
    comps = [
        Comparison(prompt_id=prompt.id, response_a_id=responses[2 * i].id, response_b_id=responses[2 * i + 1].id)
        for i in range(len(texts))
    ]
    for comp, answer in zip(comps, gold or []):
        comp.is_gold, comp.gold_choice = True, Choice(answer)
    session.add_all(comps)
    session.flush()
    return comps


def _vote(comp, user, choice, kind=VoteKind.human):
    return Vote(comparison_id=comp.id, rater_id=user.id, choice=Choice(choice), kind=kind, source=kind.value)


def _judged(judge, comp, verdict, swapped="same"):
    """The judge's verdict row and, where both orders agree, its vote (as a judge job stores them)."""
    swapped = verdict if swapped == "same" else swapped
    if verdict is None or swapped is None:
        outcome = "unparseable"
    elif swapped != verdict:
        outcome = "inconsistent"
    else:
        outcome = "voted"
    rows = [
        JudgeVerdict(
            judge_id=judge.id, comparison_id=comp.id, verdict=verdict, swapped_verdict=swapped, outcome=outcome
        )
    ]
    if outcome == "voted":
        rows.append(
            Vote(
                comparison_id=comp.id,
                rater_id=judge.user_id,
                choice=Choice(verdict),
                kind=VoteKind.judge,
                source=f"judge:{judge.id}",
            )
        )
    return rows


def _other(answer):
    return "b" if answer == "a" else "a"


def _noisy(rng, truth, accuracy):
    return truth if rng.random() < accuracy else _other(truth)


def test_agreement_and_position_consistency_follow_the_judges_known_noise_and_bias(session):
    rng = random.Random(7)
    n, q_people, q_judge, bias = 400, 0.95, 0.9, 0.2
    comps = _pairs(session, [(f"answer a {i}", f"answer b {i}") for i in range(n)])
    raters = _users(session, [f"rater{i}" for i in range(4)])
    judge = _judge(session, "noisy")
    rows, voted = [], 0
    for i, comp in enumerate(comps):
        truth = rng.choice("ab")
        rows.append(_vote(comp, raters[i % 4], _noisy(rng, truth, q_people)))
        if i < 20:  # its output could not be read in the stored order
            rows += _judged(judge, comp, None, "a")
            continue
        opinion = _noisy(rng, truth, q_judge)
        # Position bias: in each order, now and then it picks whichever answer it was shown first.
        first = "a" if rng.random() < bias else opinion
        second = "b" if rng.random() < bias else opinion
        rows += _judged(judge, comp, first, second)
        voted += first == second
    session.add_all(rows)
    session.flush()

    out = audit(session=session, judge=judge, min_overlap=20)

    assert out["votes"] == out["overlap"] == out["agreement_pairs"] == voted
    # A vote is stored only when both orders agree, and then it is the judge's opinion: it agrees
    # with one person's vote q_j q_h + (1 − q_j)(1 − q_h) of the time.
    expected_agreement = q_judge * q_people + (1 - q_judge) * (1 - q_people)
    assert out["agreement"] == pytest.approx(expected_agreement, abs=0.05)
    assert out["agreement_without_ties"] == out["agreement"]  # nobody said tie
    # Both orders agree unless exactly one pick was by position and went against the opinion, or
    # both were: 1 − bias in all.
    assert out["position_consistency"] == pytest.approx(1 - bias, abs=0.05)
    assert out["judged_both_orders"] == n - 20
    assert out["unparseable"] == 20 and out["inconsistent"] == n - 20 - voted
    # No person's reliability is measured (no gold, no pair voted twice): label_p is the agreement.
    assert out["people_accuracy"] is None
    assert out["label_p_from"] == "agreement" and out["label_p"] == out["agreement"]


def test_kappa_and_majorities_by_hand(session):
    raters = _users(session, ["ann", "bob", "cy"])
    judge = _judge(session, "tiny")
    comps = _pairs(session, [(f"x{i}", f"y{i}") for i in range(10)])
    people = {
        0: ["a"],
        1: ["a", "a", "b"],  # majority a
        2: ["b"],
        3: ["a", "b"],  # level: a tie
        4: ["tie"],
        5: ["b", "b"],
        6: ["both_bad"],  # and a simulated rater's b (below): majority b
        7: ["both_bad", "a"],  # majority a
        8: [],  # only a model's label (below): not an overlap pair
        9: ["both_bad"],  # says nothing about the order: not an overlap pair
    }
    judged = ["a", "a", "a", "tie", "b", "b", "a", "b", "a", "b"]
    rows = []
    for i, comp in enumerate(comps):
        rows += [_vote(comp, raters[k], c) for k, c in enumerate(people[i])]
        rows += _judged(judge, comp, judged[i])
    rows.append(_vote(comps[8], raters[0], "b", kind=VoteKind.machine))  # a model's label is not a person's
    rows.append(_vote(comps[6], raters[1], "b", kind=VoteKind.simulated))  # a simulated rater stands in for one
    session.add_all(rows)
    session.flush()

    out = audit(session=session, judge=judge, min_overlap=5)

    # (judge, people): (a,a) (a,a) (a,b) (tie,tie) (b,tie) (b,b) (a,b) (b,a): 4 of 8 agree.
    # Judge a 4, b 3, tie 1; people a 3, b 3, tie 2: chance agreement (12 + 9 + 2) / 64.
    assert out["overlap"] == 8 and out["votes"] == 10
    assert out["agreement"] == 0.5
    expected = 23 / 64
    assert out["kappa"] == round((0.5 - expected) / (1 - expected), 4)
    # Where both chose a side: pairs 0, 1, 2, 5, 6, 7; 0, 1 and 5 agree.
    assert out["agreement_without_ties_pairs"] == 6 and out["agreement_without_ties"] == 0.5
    assert out["position_consistency"] == 1.0 and out["judged_both_orders"] == 10
    assert out["gold"] is None


def test_kappa_is_undefined_when_chance_alone_would_always_agree():
    assert cohen_kappa({("a", "a"): 5}) is None
    assert cohen_kappa({}) is None
    assert cohen_kappa({("a", "a"): 2, ("b", "b"): 2}) == 1.0
    assert cohen_kappa({("a", "b"): 2, ("b", "a"): 2}) == -1.0


def test_length_bias_of_the_judge_beside_people_on_the_same_pairs(session):
    ann, bob, cy = _users(session, ["ann", "bob", "cy"])
    judge = _judge(session, "wordy")
    comps = _pairs(
        session,
        [
            ("a long answer here", "short"),  # judge: the longer; people: one each
            ("x", "a much longer answer"),  # judge: the longer; people: the longer
            ("same", "size"),  # equal lengths: left out
            ("the longer one", "tiny"),  # the judge said tie: left out
            ("aaa", "bbbbbbbb"),  # judge: the shorter; people: the shorter twice, and a tie
        ],
    )
    people = [["a", "b"], ["b"], ["a"], ["b"], ["a", "a", "tie"]]
    judged = ["a", "b", "a", "tie", "a"]
    rows = []
    for comp, votes, verdict in zip(comps, people, judged):
        rows += [_vote(comp, user, c) for user, c in zip((ann, bob, cy), votes)]
        rows += _judged(judge, comp, verdict)
    session.add_all(rows)
    session.flush()

    bias = audit(session=session, judge=judge, min_overlap=5)["length_bias"]

    assert bias == {"judge": round(2 / 3, 4), "people": 0.4, "pairs": 3, "people_votes": 5}


def test_a_good_judge_earns_a_high_label_p_and_a_coin_flip_one_about_a_half(session):
    rng = random.Random(11)
    raters = _users(session, [f"rater{i}" for i in range(4)])
    # Each person answers 10 gold pairs, 9 of them right: measured reliability 0.9.
    gold_comps = _pairs(session, [(f"g a {i}", f"g b {i}") for i in range(10)], gold=["a"] * 10)
    rows = [_vote(comp, r, "a" if i < 9 else "b") for r in raters for i, comp in enumerate(gold_comps)]
    comps = _pairs(session, [(f"answer a {i}", f"answer b {i}") for i in range(300)])
    good, coin, new = _judge(session, "good"), _judge(session, "coin"), _judge(session, "new")
    for i, comp in enumerate(comps):
        truth = rng.choice("ab")
        rows.append(_vote(comp, raters[i % 4], _noisy(rng, truth, 0.9)))
        rows += _judged(good, comp, _noisy(rng, truth, 0.92))
        rows += _judged(coin, comp, rng.choice("ab"))
        if i < 12:
            rows += _judged(new, comp, truth)
    session.add_all(rows)
    session.flush()

    good_out = audit(session=session, judge=good, min_overlap=20)
    coin_out = audit(session=session, judge=coin, min_overlap=20)
    new_out = audit(session=session, judge=new, min_overlap=20)

    assert good_out["people_accuracy"] == 0.9
    # Agreement with people who are right 0.9 of the time understates the judge; corrected, it is not.
    assert good_out["label_p_from"] == "corrected"
    assert good_out["label_p"] >= 0.85 > good_out["agreement_without_ties"]
    assert coin_out["label_p_from"] == "corrected"
    assert coin_out["label_p"] == pytest.approx(0.5, abs=0.08)
    # About one half says nothing: not shown better than a coin flip, its votes do not train.
    assert good_out["trains"] and not coin_out["trains"]
    assert "does not show it better than a coin flip" in coin_out["reason"]
    assert new_out["overlap"] == 12 and new_out["label_p"] is None and new_out["label_p_from"] is None
    assert new_out["reason"] == "only 12 pairs voted by both people and the judge; its votes train from 20"
    # Only the judges whose votes train, by the user they vote as.
    assert judge_label_ps(session=session, min_overlap=20) == {good.user_id: good_out["label_p"]}


def test_enough_gold_pairs_set_label_p_by_gold_accuracy(session):
    judge = _judge(session, "golden")
    answers = ["a", "b"] * 15
    comps = _pairs(session, [(f"g a {i}", f"g b {i}") for i in range(30)], gold=answers)
    rows = []
    for i, (comp, answer) in enumerate(zip(comps, answers)):
        rows += _judged(judge, comp, answer if i < 27 else _other(answer))
    session.add_all(rows)
    session.flush()

    out = audit(session=session, judge=judge, min_overlap=20)

    assert out["gold"] == {"pairs": 30, "accuracy": 0.9}
    assert out["overlap"] == 0  # no person voted on them
    assert out["label_p_from"] == "gold" and out["label_p"] == 0.9
    fewer = audit(session=session, judge=judge, min_overlap=40)
    assert fewer["label_p"] is None and fewer["reason"].startswith("only 0 pairs voted by both")


def test_a_judge_right_every_time_is_still_kept_below_certainty(session):
    judge = _judge(session, "sure")
    (ann,) = _users(session, ["ann"])
    comps = _pairs(session, [(f"a {i}", f"b {i}") for i in range(25)])
    rows = []
    for comp in comps:
        rows += [_vote(comp, ann, "a"), *_judged(judge, comp, "a")]
    session.add_all(rows)
    session.flush()

    out = audit(session=session, judge=judge, min_overlap=20)

    assert out["agreement"] == 1.0 and out["label_p"] == 0.99
    assert out["kappa"] is None  # both always said a: chance would agree as often
