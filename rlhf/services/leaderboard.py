"""Checkpoints ranked from human votes: a Bradley–Terry fit with bootstrap intervals.

Only votes between responses of *different* checkpoints say anything about which
checkpoint is better; a vote between two samples of one checkpoint is skipped. ``a`` or
``b`` is a win, ``tie`` counts half a win to each side, ``both_bad`` is skipped.

The fit is Hunter's MM algorithm for Bradley–Terry (P(i beats j) = p_i / (p_i + p_j)),
with one virtual tie of every checkpoint against a fixed anchor of strength 1. That
prior keeps a checkpoint that won (or lost) every vote at a finite rating, and keeps
checkpoints that never met on a common scale, at the cost of a little shrinkage toward
the middle. Ratings are on an Elo-like scale, 400·log10(strength), centred so the mean of
the rated checkpoints is 1000: a 400-point gap means 10:1 odds.

Confidence intervals resample the votes with replacement (``bootstrap`` times) and
refit; the interval is the 2.5–97.5 percentile of each checkpoint's rating. A ranking is
one judgement: the votes one rater's order of one ranking made (same ``Vote.ranking_id``
and rater) are resampled together, as one cluster, and every other vote is a cluster of its
own. Its pairs share answers and a moment of one rater's judgement, so resampling them one by
one would take them for independent evidence and give too narrow an interval. The point
estimate counts every vote as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from rlhf.models import (
    Checkpoint,
    CheckpointKind,
    Choice,
    Comparison,
    ComparisonSource,
    Response,
    Vote,
    VoteKind,
    stored_id,
)
from rlhf.services.vote_kinds import human_vote

CENTRE = 1000.0
SCALE = 400.0
PRIOR_GAMES = 1.0  # one virtual tie against the anchor: half a win, half a loss
_MAX_ITER = 10_000
_TOL = 1e-10


@dataclass
class Standing:
    checkpoint_id: int
    name: str
    status: str
    rating: float | None  # None: no vote between this checkpoint and another one yet
    ci_low: float | None
    ci_high: float | None
    votes: int
    wins: int
    losses: int
    ties: int
    rank: int | None = None


@dataclass
class Leaderboard:
    standings: list[Standing] = field(default_factory=list)
    votes: int = 0  # cross-checkpoint votes the fit used
    bootstrap: int = 0


def _cross_checkpoint_votes(
    session: Session, include_simulated: bool, sources: list[str] | None = None
) -> list[tuple[str, int, int, tuple[int, int] | None]]:
    """(choice, checkpoint a, checkpoint b, the judgement it is part of: (ranking, rater), or None)."""
    ra, rb = aliased(Response), aliased(Response)
    query = (
        sa.select(
            col(Vote.choice), col(ra.checkpoint_id), col(rb.checkpoint_id), col(Vote.ranking_id), col(Vote.rater_id)
        )
        .join(Comparison, col(Comparison.id) == Vote.comparison_id)
        .join(ra, col(ra.id) == Comparison.response_a_id)
        .join(rb, col(rb.id) == Comparison.response_b_id)
        # Gold pairs are answered by every rater: counted here, one pair would outweigh the rest.
        .where(
            col(ra.checkpoint_id) != rb.checkpoint_id,
            ~col(Comparison.is_gold),
            col(Vote.choice).in_([Choice.a, Choice.b, Choice.tie]),
        )
    )
    if not include_simulated:
        query = query.where(col(Vote.kind) == VoteKind.human)
    else:  # simulated raters stand in for people; a reward model's machine labels never rank checkpoints
        query = query.where(human_vote())
    if sources:
        query = query.where(col(Comparison.source).in_([ComparisonSource(s) for s in sources]))
    # SQL's != above already drops responses without a checkpoint; the None check narrows the type.
    return [
        (getattr(c, "value", c), a, b, None if ranking is None else (ranking, rater))
        for c, a, b, ranking, rater in session.connection().execute(query)
        if a is not None and b is not None
    ]


def fit_strengths(wins: np.ndarray) -> np.ndarray:
    """Bradley–Terry strengths from win matrices ``wins[..., i, j]`` (i over j; ties as 0.5 each).

    Works on a stack of matrices at once (the bootstrap replicates); returns ``[..., k]``.
    """
    games = wins + np.swapaxes(wins, -1, -2)
    won = wins.sum(axis=-1) + PRIOR_GAMES / 2
    p = np.ones(wins.shape[:-1])
    for _ in range(_MAX_ITER):
        denom = (games / (p[..., :, None] + p[..., None, :])).sum(axis=-1) + PRIOR_GAMES / (p + 1.0)
        new = won / denom
        done = np.max(np.abs(np.log(new) - np.log(p))) < _TOL
        p = new
        if done:
            break
    return p


def _ratings(p: np.ndarray) -> np.ndarray:
    r = SCALE * np.log10(p)
    return r - r.mean(axis=-1, keepdims=True) + CENTRE


def leaderboard(
    *,
    session: Session,
    bootstrap: int = 200,
    seed: int = 0,
    include_simulated: bool = False,
    sources: list[str] | None = None,
) -> Leaderboard:
    """Every policy checkpoint, rated ones first (best first), unrated ones after by id.

    ``include_simulated`` also counts votes of simulated raters (``rlhf simulate``), which
    the demo has instead of people. Arena votes count like the queue's; ``sources``
    (``queue``, ``arena``) keeps only the votes of those comparisons.
    """
    votes = _cross_checkpoint_votes(session, include_simulated, sources)
    checkpoints = {c.id: c for c in session.exec(select(Checkpoint).order_by(col(Checkpoint.id)))}
    rated_ids = sorted({cid for _, a, b, _ in votes for cid in (a, b)})
    index = {cid: i for i, cid in enumerate(rated_ids)}
    k = len(rated_ids)

    tally = {cid: {"wins": 0, "losses": 0, "ties": 0} for cid in rated_ids}
    # One category per (pair, outcome); resampling votes = resampling category counts.
    categories: dict[tuple[int, int, str], int] = {}
    judgements: dict[tuple[int, int], list[tuple[int, int, str]]] = {}  # (ranking, rater) -> its votes' categories
    for choice, a, b, judgement in votes:
        if choice == "tie":
            tally[a]["ties"] += 1
            tally[b]["ties"] += 1
            lo, hi = sorted((a, b))
            key = (lo, hi, "tie")
        else:
            winner, loser = (a, b) if choice == "a" else (b, a)
            tally[winner]["wins"] += 1
            tally[loser]["losses"] += 1
            key = (winner, loser, "win")
        categories[key] = categories.get(key, 0) + 1
        if judgement is not None:
            judgements.setdefault(judgement, []).append(key)

    rating: dict[int, float] = {}
    low: dict[int, float] = {}
    high: dict[int, float] = {}
    if k:
        keys = list(categories)
        counts = np.array([categories[key] for key in keys], dtype=float)
        contrib = np.zeros((len(keys), k * k))  # what one vote of a category adds to the win matrix
        for n, (x, y, kind) in enumerate(keys):
            i, j = index[x], index[y]
            if kind == "win":
                contrib[n, i * k + j] = 1.0
            else:
                contrib[n, i * k + j] = contrib[n, j * k + i] = 0.5
        point = _ratings(fit_strengths((counts @ contrib).reshape(k, k)))
        rating = dict(zip(rated_ids, point))
        if bootstrap > 0:
            clusters, members = _clusters(keys, counts, judgements)
            samples = resampled_counts(np.random.default_rng(seed), clusters, members, len(keys), bootstrap)
            boot = _ratings(fit_strengths((samples @ contrib).reshape(bootstrap, k, k)))
            low = dict(zip(rated_ids, np.percentile(boot, 2.5, axis=0)))
            high = dict(zip(rated_ids, np.percentile(boot, 97.5, axis=0)))

    listed = [c for c in checkpoints.values() if c.kind is CheckpointKind.policy or c.id in index]
    standings = []
    for c in listed:
        cid = stored_id(c)
        t = tally.get(cid, {"wins": 0, "losses": 0, "ties": 0})
        standings.append(
            Standing(
                checkpoint_id=cid,
                name=c.name,
                status=c.status.value,
                rating=_round(rating.get(cid)),
                ci_low=_round(low.get(cid)),
                ci_high=_round(high.get(cid)),
                votes=t["wins"] + t["losses"] + t["ties"],
                **t,
            )
        )
    standings.sort(key=lambda s: (s.rating is None, -(s.rating or 0.0), s.checkpoint_id))
    for n, s in enumerate(x for x in standings if x.rating is not None):
        s.rank = n + 1
    return Leaderboard(standings=standings, votes=len(votes), bootstrap=bootstrap if k else 0)


def _clusters(
    keys: list[tuple[int, int, str]], counts: np.ndarray, judgements: dict[tuple[int, int], list[tuple[int, int, str]]]
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The votes as clusters resampled whole, by kind: (how many clusters of each kind, its members).

    A kind is a cluster's make-up, its votes per category: a vote outside any ranking is a cluster
    of one (a kind per category, first, in the categories' order: without rankings the kinds are
    the categories and the resampling is the per-vote one), and one rater's order of one ranking a
    cluster of its votes (clusters of the same make-up are one kind). Members are (kind, category,
    votes) arrays.
    """
    index = {key: n for n, key in enumerate(keys)}
    alone = counts.copy()
    made_up: dict[tuple[tuple[int, int], ...], int] = {}
    for cluster in judgements.values():
        per_category: dict[int, int] = {}
        for key in cluster:
            per_category[index[key]] = per_category.get(index[key], 0) + 1
            alone[index[key]] -= 1
        make_up = tuple(sorted(per_category.items()))
        made_up[make_up] = made_up.get(make_up, 0) + 1
    singles = [n for n in range(len(keys)) if alone[n] > 0]
    kinds = [((n, 1),) for n in singles] + list(made_up)
    sizes = np.array([alone[n] for n in singles] + list(made_up.values()), dtype=float)
    triples = np.array([(t, c, v) for t, kind in enumerate(kinds) for c, v in kind], dtype=int).reshape(-1, 3)
    return sizes, (triples[:, 0], triples[:, 1], triples[:, 2])


_CELLS = 4_000_000  # floats held at once while resampling (a chunk of replicates × cluster members)


def resampled_counts(
    rng: np.random.Generator,
    clusters: np.ndarray,
    members: tuple[np.ndarray, np.ndarray, np.ndarray],
    categories: int,
    bootstrap: int,
) -> np.ndarray:
    """Votes per category in each of ``bootstrap`` resamples of the clusters, ``[bootstrap, categories]``.

    Drawing as many clusters as there are, with replacement, is a multinomial draw over the kinds
    of cluster (``clusters``: how many of each); each drawn cluster adds its members' votes
    ((kind, category, votes) arrays). Replicates are drawn a chunk at a time to bound memory.
    """
    kind_of, category, votes = members
    order = np.argsort(category, kind="stable")
    kind_of, category, votes = kind_of[order], category[order], votes[order]
    present, starts = np.unique(category, return_index=True)
    total = int(clusters.sum())
    out = np.zeros((bootstrap, categories))
    step = max(1, _CELLS // max(len(kind_of), len(clusters)))
    for lo in range(0, bootstrap, step):
        drawn = rng.multinomial(total, clusters / total, size=min(step, bootstrap - lo)).astype(float)
        out[lo : lo + len(drawn), present] = np.add.reduceat(drawn[:, kind_of] * votes, starts, axis=1)
    return out


def _round(value) -> float | None:
    return None if value is None else round(float(value), 1)
