"""What a rater's order of a ranking says: the groups it names, and each pair's vote.

An order is a list of groups of answer positions (as the rater was shown them), best group
first; answers in one group are placed together. Pure functions: the service stores what they
compute (:mod:`rlhf.services.rankings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

from rlhf.errors import InvalidInput
from rlhf.models import Choice


def parse_order(order: Any, answers: int) -> list[list[int]]:
    """A rater's order as groups of positions, best first (a group is answers placed together).

    Every position from 0 to ``answers`` − 1 once: one missing, named twice, or out of range is
    refused, naming it. A bare number stands for a group of one; a group comes back sorted.
    """
    if not isinstance(order, list | tuple) or not order:
        raise InvalidInput("order must be a list of groups of answer numbers, best first: [[0], [2, 1], [3]]")
    groups: list[list[int]] = []
    seen: set[int] = set()
    for group in order:
        members = list(group) if isinstance(group, list | tuple) else [group]
        if not members:
            raise InvalidInput("order has an empty group: every group names at least one answer")
        for item in members:
            if isinstance(item, bool) or not isinstance(item, int):
                raise InvalidInput(f"order names {item!r}: answers are numbered 0 to {answers - 1}")
            if not 0 <= item < answers:
                raise InvalidInput(f"order names answer {item}, and there are {answers} answers (0 to {answers - 1})")
            if item in seen:
                raise InvalidInput(f"order names answer {item} twice")
            seen.add(item)
        groups.append(sorted(members))
    missing = sorted(set(range(answers)) - seen)
    if missing:
        listed = ", ".join(str(m) for m in missing)
        raise InvalidInput(f"order leaves out answer{'s' if len(missing) > 1 else ''} {listed}: place every answer")
    return groups


def pair_choices(groups: list[list[int]], shown: list[int]) -> dict[tuple[int, int], Choice]:
    """What an order says of each pair of answers, keyed by (response id, response id) as shown order
    positions map to responses: the better-placed one wins, answers of one group tie."""
    place = {shown[pos]: rank for rank, group in enumerate(groups) for pos in group}
    out = {}
    for a, b in combinations(shown, 2):
        out[(a, b)] = Choice.tie if place[a] == place[b] else (Choice.a if place[a] < place[b] else Choice.b)
        out[(b, a)] = out[(a, b)].swapped()
    return out


def order_from_choices(said: Sequence[tuple[int, int, Choice]], shown: list[int]) -> list[list[int]]:
    """The groups (positions in ``shown``, best first) that a ranking's votes say, from (response a,
    response b, choice) of each: an answer's place is how many answers beat it, so answers that
    tied sit together."""
    beaten = dict.fromkeys(shown, 0)
    for a, b, choice in said:
        if choice is Choice.a:
            beaten[b] += 1
        elif choice is Choice.b:
            beaten[a] += 1
    levels = sorted(set(beaten.values()))
    return [[n for n, rid in enumerate(shown) if beaten[rid] == level] for level in levels]
