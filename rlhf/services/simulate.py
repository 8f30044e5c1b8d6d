"""Simulated raters: rule-based votes, for demos, tests and benchmarks of the loop.

Rules: ``contains:WORD`` / ``avoids:WORD`` prefer the response that does (or does not)
contain WORD (case-insensitive, whole word); ``shorter`` / ``longer`` compare length in
characters. When the rule cannot tell the two apart the vote is ``tie``. ``noise`` flips
a decided vote with that probability.

With ``strength``, a decided vote also says how much better (:class:`~rlhf.models.Strength`),
from how far apart the rule finds the two: for the length rules, the difference over the
longer one's length (under 0.15 slightly, under 0.4 clearly, else much better); for the word
rules, how many more times one has the word than the other (once: clearly, more: much). A
flipped vote keeps the strength of the vote it was: the simulation does not assume that
raters know when they are wrong.
"""

from __future__ import annotations

import random
import re
import secrets
from collections import Counter
from collections.abc import Callable

from sqlmodel import Session, col, select

from rlhf.errors import InvalidInput
from rlhf.models import Choice, Comparison, Response, Role, Strength, User, Vote, VoteKind, stored_id, utcnow
from rlhf.services.comparisons import open_comparisons, place_is_free
from rlhf.services.users import create_user, find_user
from rlhf.services.votes import record_vote

Rule = Callable[[str, str], Choice]


def parse_rule(rule: str) -> Rule:
    name, _, arg = rule.partition(":")
    if name in ("contains", "avoids"):
        if not arg:
            raise InvalidInput(f"rule {name} needs a word: {name}:WORD")
        pattern = re.compile(rf"\b{re.escape(arg)}\b", re.IGNORECASE)
        want = name == "contains"

        def by_word(a: str, b: str) -> Choice:
            ha, hb = bool(pattern.search(a)), bool(pattern.search(b))
            if ha == hb:
                return Choice.tie
            return Choice.a if ha == want else Choice.b

        return by_word
    if name in ("shorter", "longer") and not arg:
        sign = 1 if name == "longer" else -1

        def by_length(a: str, b: str) -> Choice:
            d = (len(a) - len(b)) * sign
            return Choice.tie if d == 0 else (Choice.a if d > 0 else Choice.b)

        return by_length
    raise InvalidInput(f"unknown rule {rule!r}; use contains:WORD, avoids:WORD, shorter or longer")


def parse_strength_rule(rule: str) -> Callable[[str, str], Strength]:
    """How much better the rule finds the one it prefers (see the module's docstring)."""
    parse_rule(rule)  # the same names, refused the same way
    name, _, arg = rule.partition(":")
    if name in ("contains", "avoids"):
        pattern = re.compile(rf"\b{re.escape(arg)}\b", re.IGNORECASE)

        def by_count(a: str, b: str) -> Strength:
            apart = abs(len(pattern.findall(a)) - len(pattern.findall(b)))
            return Strength.clearly if apart <= 1 else Strength.much

        return by_count

    def by_length(a: str, b: str) -> Strength:
        share = abs(len(a) - len(b)) / max(len(a), len(b), 1)
        return Strength.slightly if share < 0.15 else Strength.clearly if share < 0.4 else Strength.much

    return by_length


def simulated_raters(*, session: Session, k: int) -> list[User]:
    raters = []
    for i in range(1, k + 1):
        name = f"sim-{i}"
        user = find_user(session=session, name=name)
        # A random password nobody knows: simulated raters cannot log in.
        raters.append(
            user or create_user(session=session, name=name, role=Role.rater, password=secrets.token_urlsafe(24))
        )
    session.flush()
    return raters


def simulate(
    *,
    session: Session,
    rule: str,
    raters: int = 1,
    noise: float = 0.0,
    limit: int | None = None,
    seed: int = 0,
    strength: bool = False,
) -> dict[str, int]:
    """Vote on open comparisons until each reaches its target or the raters run out; with
    ``strength``, decided votes say how much better too (counted as ``strength_1`` … ``_3``)."""
    decide = parse_rule(rule)
    how_much = parse_strength_rule(rule) if strength else None
    if not 0.0 <= noise <= 1.0:
        raise InvalidInput("the noise (the chance a simulated vote is flipped) must be between 0 and 1", param="noise")
    if raters < 1:
        raise InvalidInput("there must be at least 1 simulated rater", param="raters")
    rng = random.Random(seed)
    team = simulated_raters(session=session, k=raters)
    counts: Counter[str] = Counter()
    for comp in open_comparisons(session=session, limit=limit):
        comp_id = stored_id(comp)
        # The pair's responses and the comparison itself are rows its foreign keys guarantee.
        a = session.get_one(Response, comp.response_a_id).text
        b = session.get_one(Response, comp.response_b_id).text
        voted = set(session.exec(select(Vote.rater_id).where(col(Vote.comparison_id) == comp_id)))
        for user in team:
            if session.get_one(Comparison, comp_id).status.value != "open":
                break
            if user.id in voted:
                continue
            choice = decide(a, b)
            level = how_much(a, b) if how_much is not None and choice is not Choice.tie else None
            if choice is not Choice.tie and rng.random() < noise:
                choice = choice.swapped()
            if not place_is_free(session=session, comparison_id=comp_id, rater_id=stored_id(user), now=utcnow()):
                break  # people hold every place left in this pair: theirs to vote on, not ours
            record_vote(
                session=session,
                rater=user,
                comparison_id=comp_id,
                choice=choice,
                as_shown=False,
                kind=VoteKind.simulated,
                source=f"simulated:{rule}",
                strength=level,
            )
            counts[choice.value] += 1
            if level is not None:
                counts[f"strength_{int(level)}"] += 1
    counts["votes"] = sum(v for k, v in counts.items() if k in {c.value for c in Choice})
    return dict(counts)
