"""How far an AI judge can be trusted: its votes measured against people's, and the weight they earn.

The *overlap* is the pairs both the judge and people voted on (a person's ``both_bad`` says
nothing about the order, so a pair needs a person's ``a``, ``b`` or ``tie``). On it the judge
is held against the people's majority (the most chosen of ``a``, ``b``, ``tie``; level top
counts are a ``tie``): the share that matches, the same share on pairs where both chose a
side, and Cohen's κ over the three answers. Its verdicts give its position consistency (the
share of pairs judged in both orders where both orders agree), and its decisive votes its
length bias (how often it chose the longer answer, beside people on the same pairs).

*label_p*, the probability that one of its votes is right, is what its votes train with:

- its gold accuracy, once it has voted on ``min_overlap`` gold pairs;
- else, on ``min_overlap`` overlap pairs, its agreement A with people (decisive pairs)
  corrected for the people's own measured reliability q_h
  (:func:`~rlhf.services.soft_labels.rater_reliability`): a judge right q_j of the time
  agrees with a person right q_h of the time A = q_j q_h + (1 − q_j)(1 − q_h), so
  q_j = (A − 1 + q_h) / (2 q_h − 1);
- else, where no person's reliability is measured, A itself;
- below ``min_overlap`` pairs none: its votes do not train.

Its votes train only once the counts behind that figure show it better than a coin flip
(:mod:`rlhf.services.evidence`, valid however often it is re-checked): a coin-flip judge earns
about ½, which would only pull the reward model's margins towards 0 (``trains`` and ``reason``).

label_p is kept within [0.5, 0.99]: below chance the label would be better flipped (not
ours to guess), and a few hundred pairs never prove a judge is never wrong. Every figure is
an aggregate in SQL: only one row per answer pair (at most nine), per rater and per outcome
comes back, however many votes there are.
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy import String, type_coerce
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from rlhf.models import Choice, Comparison, Judge, JudgeVerdict, Response, Vote, VoteKind, stored_id
from rlhf.services.evidence import ALPHA, log_evidence_above_half, shown_above_half
from rlhf.services.soft_labels import rater_reliability
from rlhf.services.vote_kinds import PEOPLE

ANSWERS = ("a", "b", "tie")
ANSWER_CHOICES = (Choice.a, Choice.b, Choice.tie)
LABEL_P_MIN, LABEL_P_MAX = 0.5, 0.99


def audit(
    *, session: Session, judge: Judge, min_overlap: int, reliability: dict[int, float] | None = None
) -> dict[str, Any]:
    """The judge's audit against people, and the label_p its votes earn (JSON-ready).

    ``reliability``: people's measured reliability by rater id, where the caller has it already
    (:func:`~rlhf.services.soft_labels.rater_reliability`); else it is measured here.
    """
    if reliability is None:
        reliability = rater_reliability(session=session)
    user_id = judge.user_id
    confusion, length = _against_people(session, user_id)
    overlap = sum(confusion.values())
    agreeing = sum(n for (j, m), n in confusion.items() if j == m)
    decisive = {k: n for k, n in confusion.items() if k[0] != "tie" and k[1] != "tie"}
    decisive_pairs = sum(decisive.values())
    agreement_wo_ties = sum(n for (j, m), n in decisive.items() if j == m) / decisive_pairs if decisive_pairs else None
    q_h = _people_accuracy(session, user_id, reliability)
    gold = _gold(session, user_id)
    out: dict[str, Any] = {
        "judge_id": stored_id(judge),
        "name": judge.name,
        "votes": _count(session, select(func.count()).select_from(Vote).where(*_judge_votes(Vote, user_id))),
        "overlap": overlap,
        "agreement": _round(agreeing / overlap if overlap else None),
        "agreement_pairs": overlap,
        "agreement_without_ties": _round(agreement_wo_ties),
        "agreement_without_ties_pairs": decisive_pairs,
        "kappa": _round(cohen_kappa(confusion)),
        **_consistency(session, stored_id(judge)),
        "length_bias": length,
        "gold": gold,
        "people_accuracy": _round(q_h),
    }
    out.update(_label_p(overlap, agreement_wo_ties, decisive_pairs, q_h, gold, min_overlap))
    return out


def judge_label_ps(
    *, session: Session, min_overlap: int, reliability: dict[int, float] | None = None
) -> dict[int, float]:
    """Each judge's label_p by the id of the user it votes as; judges whose votes do not train are absent.
    ``reliability``: people's measured reliability, where the caller has it already."""
    judges = session.exec(select(Judge).order_by(col(Judge.id))).all()
    if not judges:
        return {}
    if reliability is None:
        reliability = rater_reliability(session=session)
    out: dict[int, float] = {}
    for judge in judges:
        report = audit(session=session, judge=judge, min_overlap=min_overlap, reliability=reliability)
        if report["trains"]:
            out[judge.user_id] = report["label_p"]
    return out


def cohen_kappa(confusion: dict[tuple[str, str], int]) -> float | None:
    """Cohen's κ from counts of (one side's answer, the other's); None where chance alone would agree always."""
    n = sum(confusion.values())
    if not n:
        return None
    observed = sum(c for (x, y), c in confusion.items() if x == y) / n
    first = {k: sum(c for (x, _), c in confusion.items() if x == k) / n for k in ANSWERS}
    second = {k: sum(c for (_, y), c in confusion.items() if y == k) / n for k in ANSWERS}
    expected = sum(first[k] * second[k] for k in ANSWERS)
    if expected >= 1.0 - 1e-12:
        return None
    return (observed - expected) / (1.0 - expected)


def _label_p(
    overlap: int,
    agreement: float | None,
    decisive: int,
    q_h: float | None,
    gold: dict[str, Any] | None,
    min_overlap: int,
) -> dict[str, Any]:
    """label_p, where it comes from, and whether the judge's votes train (``trains``, or ``reason``)."""
    if gold is not None and gold["pairs"] >= min_overlap:
        return _gated(_clip(gold["accuracy"]), "gold", gold["accuracy"], gold["pairs"], "its gold accuracy")
    if overlap < min_overlap:
        pairs = "pair" if overlap == 1 else "pairs"
        return {
            "label_p": None,
            "label_p_from": None,
            "trains": False,
            "reason": f"only {overlap} {pairs} voted by both people and the judge; its votes train from {min_overlap}",
        }
    if agreement is None:
        return {
            "label_p": None,
            "label_p_from": None,
            "trains": False,
            "reason": "no pair where both people and the judge chose an answer rather than a tie",
        }
    if q_h is not None and q_h > 0.5:
        p, source = _clip((agreement - 1 + q_h) / (2 * q_h - 1)), "corrected"
    else:
        p, source = _clip(agreement), "agreement"
    return _gated(p, source, agreement, decisive, "its agreement with people")


def _gated(p: float, source: str, rate: float, n: int, what: str) -> dict[str, Any]:
    """A label_p that trains only once the judge is shown better than a coin flip (anytime-valid:
    :mod:`rlhf.services.evidence`): a label at about ½ says nothing, yet would pull margins to 0."""
    k = round(rate * n)
    out: dict[str, Any] = {
        "label_p": p,
        "label_p_from": source,
        "evidence": round(math.exp(min(log_evidence_above_half(k, n), 700.0)), 4),
    }
    if shown_above_half(k, n):
        return {**out, "trains": True}
    return {
        **out,
        "trains": False,
        "reason": f"{what}, {k} of {n}, does not show it better than a coin flip yet "
        f"(evidence {out['evidence']:g}, needs {1 / ALPHA:g}); its votes do not train",
    }


def _judge_votes(vote: Any, user_id: int) -> list[Any]:
    """SQL conditions: ``vote`` (Vote or an alias of it) is this judge's, on an answer."""
    return [vote.rater_id == user_id, vote.kind == VoteKind.judge, vote.choice.in_(ANSWER_CHOICES)]


def _overlap_votes():
    """(the judge's vote, a person's answer on the same pair): aliases and their join condition."""
    jv, pv = aliased(Vote), aliased(Vote)
    on = sa.and_(pv.comparison_id == jv.comparison_id, pv.kind.in_(PEOPLE), pv.choice.in_(ANSWER_CHOICES))
    return jv, pv, on


def _against_people(session: Session, user_id: int) -> tuple[dict[tuple[str, str], int], dict[str, Any]]:
    """(overlap pairs by (judge's answer, people's majority), the length-bias figures)."""
    jv, pv, on = _overlap_votes()
    ra, rb = aliased(Response), aliased(Response)
    counted = {k: func.sum(sa.case((type_coerce(pv.choice, String) == k, 1), else_=0)) for k in ANSWERS}
    len_a, len_b = func.length(ra.text), func.length(rb.text)
    per_pair = (
        sa.select(
            type_coerce(jv.choice, String).label("judge"),
            counted["a"].label("n_a"),
            counted["b"].label("n_b"),
            counted["tie"].label("n_tie"),
            len_a.label("len_a"),
            len_b.label("len_b"),
        )
        .select_from(jv)
        .join(pv, on)
        .join(Comparison, col(Comparison.id) == jv.comparison_id)
        .join(ra, col(Comparison.response_a_id) == ra.id)
        .join(rb, col(Comparison.response_b_id) == rb.id)
        .where(*_judge_votes(jv, user_id))
        .group_by(jv.comparison_id, jv.choice, len_a, len_b)
        .subquery()
    )
    c = per_pair.c
    # Level top counts (a and b, or either with tie) are a tie, as is a tie on top.
    majority = sa.case(
        (sa.and_(c.n_a > c.n_b, c.n_a > c.n_tie), "a"),
        (sa.and_(c.n_b > c.n_a, c.n_b > c.n_tie), "b"),
        else_="tie",
    )
    # Length bias counts the pairs the judge chose a side on whose answers differ in length.
    counts = sa.and_(c.judge.in_(("a", "b")), c.len_a != c.len_b)
    a_longer = c.len_a > c.len_b
    # A subquery of its own, so the majority is grouped by name (PostgreSQL would not match the
    # same CASE with parameters of its own in the SELECT and the GROUP BY).
    pairs_q = sa.select(
        c.judge,
        majority.label("people"),
        sa.case((counts, 1), else_=0).label("counts"),
        sa.case(
            (sa.and_(counts, a_longer, c.judge == "a"), 1), (sa.and_(counts, ~a_longer, c.judge == "b"), 1), else_=0
        ).label("judge_longer"),
        sa.case((sa.and_(counts, a_longer), c.n_a), (counts, c.n_b), else_=0).label("people_longer"),
        sa.case((counts, c.n_a + c.n_b), else_=0).label("people_decisive"),
    ).subquery()
    p = pairs_q.c
    rows = session.execute(
        sa.select(
            p.judge,
            p.people,
            func.count(),
            func.sum(p.counts),
            func.sum(p.judge_longer),
            func.sum(p.people_longer),
            func.sum(p.people_decisive),
        ).group_by(p.judge, p.people)
    ).all()
    confusion: dict[tuple[str, str], int] = {}
    pairs = judge_long = people_long = people_votes = 0
    for judge_answer, people_answer, n, counted_pairs, j_long, p_long, p_votes in rows:
        confusion[(judge_answer, people_answer)] = int(n)
        pairs += int(counted_pairs or 0)
        judge_long += int(j_long or 0)
        people_long += int(p_long or 0)
        people_votes += int(p_votes or 0)
    length = {
        "judge": _round(judge_long / pairs if pairs else None),
        "people": _round(people_long / people_votes if people_votes else None),
        "pairs": pairs,
        "people_votes": people_votes,
    }
    return confusion, length


def _people_accuracy(session: Session, user_id: int, reliability: dict[int, float]) -> float | None:
    """The measured reliability of the people's votes on the overlap, each person weighted by their votes there."""
    jv, pv, on = _overlap_votes()
    rows = session.execute(
        sa.select(pv.rater_id, func.count())
        .select_from(jv)
        .join(pv, on)
        .where(*_judge_votes(jv, user_id))
        .group_by(pv.rater_id)
    ).all()
    known = [(reliability[r], int(n)) for r, n in rows if r in reliability]
    votes = sum(n for _, n in known)
    return sum(q * n for q, n in known) / votes if votes else None


def _gold(session: Session, user_id: int) -> dict[str, Any] | None:
    row = session.execute(
        sa.select(func.count(), func.sum(sa.case((col(Vote.choice) == col(Comparison.gold_choice), 1), else_=0)))
        .select_from(Vote)
        .join(Comparison, col(Comparison.id) == col(Vote.comparison_id))
        .where(*_judge_votes(Vote, user_id), col(Comparison.is_gold), col(Comparison.gold_choice).is_not(None))
    ).one()
    pairs, correct = int(row[0]), int(row[1] or 0)
    return {"pairs": pairs, "accuracy": _round(correct / pairs)} if pairs else None


def _consistency(session: Session, judge_id: int) -> dict[str, Any]:
    both, agree = session.execute(
        sa.select(
            func.count(),
            func.sum(sa.case((col(JudgeVerdict.verdict) == col(JudgeVerdict.swapped_verdict), 1), else_=0)),
        )
        .select_from(JudgeVerdict)
        .where(
            col(JudgeVerdict.judge_id) == judge_id,
            col(JudgeVerdict.verdict).is_not(None),
            col(JudgeVerdict.swapped_verdict).is_not(None),
        )
    ).one()
    outcomes: dict[str, int] = dict(
        session.execute(
            sa.select(col(JudgeVerdict.outcome), func.count())
            .where(col(JudgeVerdict.judge_id) == judge_id)
            .group_by(col(JudgeVerdict.outcome))
        ).all()
    )
    return {
        "position_consistency": _round(int(agree or 0) / both if both else None),
        "judged_both_orders": int(both),
        "verdicts": sum(int(n) for n in outcomes.values()),
        "inconsistent": int(outcomes.get("inconsistent", 0)),
        "unparseable": int(outcomes.get("unparseable", 0)),
    }


def _count(session: Session, statement: Any) -> int:
    return int(session.exec(statement).one())


def _clip(p: float) -> float:
    return round(min(LABEL_P_MAX, max(LABEL_P_MIN, p)), 4)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
