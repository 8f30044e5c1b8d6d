"""Simulated raters: rule-based votes and orders, for demos, tests and benchmarks of the loop.

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

Rankings: after the open pairs, each simulated rater orders the open rankings it is handed
(:func:`~rlhf.services.rankings.next_ranking_for_rater`, then ``submit_ranking``), by the
same rule. Each answer gets the rule's score (the word rules: whether it has the word, as a
pair vote asks; the length rules: its length), so without noise every pair of a ranking says
what a pair vote on those two would, and answers of equal score share a group. Noise is
defined pair by pair, as for pairs: each pair of answers the rule tells apart has its
comparison flipped with probability ``noise``; the order is then built back from the noisy
comparisons by their Copeland count (wins − losses), answers with equal counts in one group.
So a ranking of two is exactly a pair vote, flipped with probability ``noise``. In a longer
ranking an order cannot hold every noisy comparison (flips can make a cycle), so its stored
pairs are the order's, not the comparisons one by one: a flip may instead tie two answers the
rule sets apart (a cycle, or equal counts), or set apart two it ties. Rankings say no strength.

Rater time: each judgement costs the simulated time of :func:`judgement_seconds` (a
decision, reading the prompt and every answer, the Rate tab's own time, and what strength or
an order adds), summed over the run; ``minutes`` stops the run at a budget of rater-minutes,
before the first judgement that would not fit in it.
"""

from __future__ import annotations

import random
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

from sqlmodel import Session, col, select

from rlhf.errors import InvalidInput
from rlhf.models import (
    Choice,
    Comparison,
    ComparisonStatus,
    Prompt,
    Response,
    Role,
    Strength,
    User,
    Vote,
    VoteKind,
    stored_id,
    utcnow,
)
from rlhf.services.comparisons import place_is_free
from rlhf.services.rankings import next_ranking_for_rater, release_ranking_leases, submit_ranking
from rlhf.services.users import create_user, find_user
from rlhf.services.votes import record_vote

Rule = Callable[[str, str], Choice]

# The rater-time model. Assumptions, not measurements, except the Rate tab's own time.
READING_CHARS_PER_MIN = 1000.0
"""Reading speed: about 200 words a minute at about 5 characters a word, a careful reading pace
rather than skimming (an assumption)."""
DECIDE_S = 3.0
"""A person weighing two read answers and pressing a key (an assumption)."""
STRENGTH_CLICK_S = 1.5
"""The "slightly" / "clearly" button after a vote (an assumption). "Much better" rides on the
vote's own key (Shift+1/2) and costs nothing more; a tie says no strength."""
ORDER_PER_EXTRA_ANSWER_S = 2.0
"""Placing each answer of a ranking beyond the first two (an assumption): the answers are read
and the first two weighed within :data:`DECIDE_S`; each further answer is set against the ones
already placed and moved into its place, less than a fresh decision on two unread answers."""
RATE_UI_NEXT_S = 0.25
"""The Rate tab's own time from a judgement sent to the next item on screen, in seconds: measured,
not assumed. ``tests/browser/test_rate_ranking.py`` prints it (``rate-ui timing: …`` with ``-s``),
from the submitting keystroke or tap to the next item drawn, in headless Chromium against a local
server. Three runs on 2026-12-07 (2 CPU cores, other work running): pairs 0.11–0.33 s (median
0.16 s), rankings 0.18–0.42 s (median 0.30 s); this is the median of all 18 figures, one figure
for both kinds, as it is a few percent of any judgement's time. The server's own part
(``rlhf.services.rating.vote_then_next``) is 2–4 ms of it."""


def reading_seconds(chars: int) -> float:
    """Seconds to read this many characters at :data:`READING_CHARS_PER_MIN`."""
    return 60.0 * chars / READING_CHARS_PER_MIN


def prompt_chars(messages: Iterable[Mapping[str, Any]]) -> int:
    """Characters a rater reads of a prompt: every message's content."""
    return sum(len(m.get("content") or "") for m in messages)


def judgement_seconds(*, prompt: int, answers: Sequence[int], strength_click: bool = False) -> float:
    """Simulated rater time of one judgement: a pair (two answers) or a ranking (more).

    ``prompt`` and ``answers`` are the characters read of the prompt and of each answer. The
    time is the Rate tab's own (:data:`RATE_UI_NEXT_S`) + a decision (:data:`DECIDE_S`) +
    reading the prompt and every answer (:func:`reading_seconds`) + :data:`ORDER_PER_EXTRA_ANSWER_S`
    for each answer beyond two + :data:`STRENGTH_CLICK_S` when the judgement also clicks a
    strength ("slightly" or "clearly").
    """
    return (
        RATE_UI_NEXT_S
        + DECIDE_S
        + reading_seconds(prompt + sum(answers))
        + ORDER_PER_EXTRA_ANSWER_S * max(0, len(answers) - 2)
        + (STRENGTH_CLICK_S if strength_click else 0.0)
    )


def _word(arg: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(arg)}\b", re.IGNORECASE)


def parse_rule(rule: str) -> Rule:
    name, _, arg = rule.partition(":")
    if name in ("contains", "avoids"):
        if not arg:
            raise InvalidInput(f"rule {name} needs a word: {name}:WORD")
        pattern = _word(arg)
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


def parse_score(rule: str) -> Callable[[str], int]:
    """One answer's score under the rule, higher is better: the order a ranking is given.

    Two answers compare by their scores as :func:`parse_rule` compares them: the word rules
    score whether the answer has the word (1 or 0, the other way round for ``avoids``), the
    length rules its length (negated for ``shorter``)."""
    parse_rule(rule)  # the same names, refused the same way
    name, _, arg = rule.partition(":")
    if name in ("contains", "avoids"):
        pattern = _word(arg)
        want = name == "contains"
        return lambda text: int(bool(pattern.search(text)) == want)
    sign = 1 if name == "longer" else -1
    return lambda text: sign * len(text)


def parse_strength_rule(rule: str) -> Callable[[str, str], Strength]:
    """How much better the rule finds the one it prefers (see the module's docstring)."""
    parse_rule(rule)  # the same names, refused the same way
    name, _, arg = rule.partition(":")
    if name in ("contains", "avoids"):
        pattern = _word(arg)

        def by_count(a: str, b: str) -> Strength:
            apart = abs(len(pattern.findall(a)) - len(pattern.findall(b)))
            return Strength.clearly if apart <= 1 else Strength.much

        return by_count

    def by_length(a: str, b: str) -> Strength:
        share = abs(len(a) - len(b)) / max(len(a), len(b), 1)
        return Strength.slightly if share < 0.15 else Strength.clearly if share < 0.4 else Strength.much

    return by_length


def order_by_rule(
    answers: Sequence[str], score: Callable[[str], int], noise: float, rng: random.Random
) -> list[list[int]]:
    """The order a simulated rater gives these answers: groups of positions, best group first.

    Every pair the rule tells apart is a win for the higher score, flipped with probability
    ``noise``; the answers are then grouped by their Copeland count (wins − losses), highest
    first. Without noise that is the rule's own order, equal scores in one group."""
    scores = [score(text) for text in answers]
    count = [0] * len(answers)
    for i, j in combinations(range(len(answers)), 2):
        if scores[i] == scores[j]:
            continue
        win, lose = (i, j) if scores[i] > scores[j] else (j, i)
        if rng.random() < noise:
            win, lose = lose, win
        count[win] += 1
        count[lose] -= 1
    return [[n for n, c in enumerate(count) if c == level] for level in sorted(set(count), reverse=True)]


class Simulated(dict[str, int]):
    """What a simulation recorded, counted by key as it always was (``a``, ``b``, ``tie``,
    ``votes``, ``strength_1`` … ``_3`` for pairs; ``rankings``, ``ranking_pairs``,
    ``ranking_decided`` for orders), with the simulated rater time it took."""

    def __init__(self, counts: Mapping[str, int], rater_seconds: float) -> None:
        super().__init__(counts)
        self.rater_seconds = rater_seconds

    @property
    def rater_minutes(self) -> float:
        return self.rater_seconds / 60.0

    @property
    def judgements(self) -> int:
        """Pair votes and orders: one each, however many pairs an order decides."""
        return self.get("votes", 0) + self.get("rankings", 0)


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
    minutes: float | None = None,
) -> Simulated:
    """Vote on open comparisons, then order open rankings, until each reaches its target, the raters
    run out, or the rater time reaches ``minutes``.

    ``limit``: at most this many open comparisons, then rankings up to the same total. With
    ``strength``, decided pair votes say how much better too (counted as ``strength_1`` … ``_3``).
    The result counts what was recorded; its ``rater_minutes`` is the simulated rater time spent.
    """
    decide = parse_rule(rule)
    score = parse_score(rule)
    how_much = parse_strength_rule(rule) if strength else None
    if not 0.0 <= noise <= 1.0:
        raise InvalidInput("the noise (the chance a simulated vote is flipped) must be between 0 and 1", param="noise")
    if raters < 1:
        raise InvalidInput("there must be at least 1 simulated rater", param="raters")
    if minutes is not None and not minutes > 0:
        raise InvalidInput(f"the budget of rater-minutes must be above 0, not {minutes}", param="minutes")
    budget = None if minutes is None else 60.0 * minutes
    rng = random.Random(seed)
    team = simulated_raters(session=session, k=raters)
    counts: Counter[str] = Counter()
    spent = 0.0
    out_of_time = False
    pairs = _open_pairs(session, limit)
    for comp in pairs:
        comp_id = stored_id(comp)
        # The pair's responses and the comparison itself are rows its foreign keys guarantee.
        a = session.get_one(Response, comp.response_a_id).text
        b = session.get_one(Response, comp.response_b_id).text
        read = prompt_chars(session.get_one(Prompt, comp.prompt_id).messages)
        voted = set(session.exec(select(Vote.rater_id).where(col(Vote.comparison_id) == comp_id)))
        for user in team:
            if session.get_one(Comparison, comp_id).status.value != "open":
                break
            if user.id in voted:
                continue
            choice = decide(a, b)
            level = how_much(a, b) if how_much is not None and choice is not Choice.tie else None
            cost = judgement_seconds(
                prompt=read, answers=(len(a), len(b)), strength_click=level in (Strength.slightly, Strength.clearly)
            )
            if budget is not None and spent + cost > budget:
                out_of_time = True
                break
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
            spent += cost
            counts[choice.value] += 1
            if level is not None:
                counts[f"strength_{int(level)}"] += 1
        if out_of_time:
            break
    counts["votes"] = sum(v for k, v in counts.items() if k in {c.value for c in Choice})
    if not out_of_time and not (limit and len(pairs) >= limit):
        spent = _order_rankings(
            session,
            team,
            rule,
            score,
            noise,
            rng,
            counts,
            spent=spent,
            budget=budget,
            most=limit - len(pairs) if limit else None,
        )
    return Simulated(counts, spent)


def _open_pairs(session: Session, limit: int | None) -> list[Comparison]:
    """Open comparisons voted on alone, by id: a ranking's pairs are ordered as a whole."""
    query = (
        select(Comparison)
        .where(Comparison.status == ComparisonStatus.open, col(Comparison.ranking_id).is_(None))
        .order_by(col(Comparison.id))
    )
    if limit:
        query = query.limit(limit)
    return list(session.exec(query))


def _order_rankings(
    session: Session,
    team: list[User],
    rule: str,
    score: Callable[[str], int],
    noise: float,
    rng: random.Random,
    counts: Counter[str],
    *,
    spent: float,
    budget: float | None,
    most: int | None,
) -> float:
    """Each rater in turn orders the rankings handed to them; returns the rater time spent so far.

    Stops a rater at the first ranking past ``most`` distinct rankings, and everyone at the first
    order that would not fit in the budget; the lease just taken is given back, so the ranking's
    place goes to someone else now."""
    seen: set[int] = set()
    for user in team:
        while (handout := next_ranking_for_rater(session=session, rater=user, rng=rng)) is not None:
            cost = judgement_seconds(
                prompt=prompt_chars(handout.prompt), answers=[len(text) for text in handout.answers]
            )
            past_limit = most is not None and handout.ranking_id not in seen and len(seen) >= most
            out_of_time = budget is not None and spent + cost > budget
            if past_limit or out_of_time:
                release_ranking_leases(session=session, rater_id=stored_id(user))
                session.commit()
                if out_of_time:
                    return spent
                break
            seen.add(handout.ranking_id)
            order = order_by_rule(handout.answers, score, noise, rng)
            submit_ranking(
                session=session,
                rater=user,
                ranking_id=handout.ranking_id,
                order=order,
                kind=VoteKind.simulated,
                source=f"simulated:{rule}",
            )
            spent += cost
            k = len(handout.answers)
            ties = sum(len(g) * (len(g) - 1) // 2 for g in order)
            counts["rankings"] += 1
            counts["ranking_pairs"] += k * (k - 1) // 2
            counts["ranking_decided"] += k * (k - 1) // 2 - ties
    return spent
