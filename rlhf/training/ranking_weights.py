"""Rankings in training: a rater's order of K answers counts as one judgement, not C(K,2).

A ranking reaches training as the rows of its pairs, each carrying ``ranking_id`` and
``ranking_size`` (K). Its C(K,2) pairs share answers and one rater's attention, so taken as
independent rows they would outweigh a plain pair C(K,2) times (15 times at K = 6) and
overfit to that rater's view (InstructGPT, Ouyang et al. 2022, §3.5). With
``ranking_weight=judgement`` (the default) each pair of a ranking of K is weighted in the loss:

- reward model: 1/C(K,2), as InstructGPT did, so a ranking's pairs together weigh one pair;
- DPO: 1/(K−1). Each answer of the ranking sits in K−1 of its pairs, so each answer's
  log-probability is pushed, in all, as hard as the answer of one plain pair.

Every other row weighs 1, and ``ranking_weight=pair`` weighs every pair 1 (as before rankings
existed). The loss of a batch is the mean over its pairs of weight × the pair's loss, the
weight multiplying the whole preference term (margin or offset and soft label included):
:func:`weighted_addition` is what the trainers add to TRL's unweighted mean.

A held-out split keeps a ranking's pairs together (:func:`split_key`), so no answer order
is trained on and measured on at once. Nothing here imports torch at import time.
"""

from __future__ import annotations

from collections.abc import Iterable
from math import comb
from typing import Any

from rlhf.errors import InvalidInput

RANKING_ID = "ranking_id"
RANKING_SIZE = "ranking_size"
WEIGHT = "pair_weight"  # the column the collators carry and the trainers read
RANKING_WEIGHTS = ("judgement", "pair")


def pair_weight(size: int, algorithm: str) -> float:
    """The weight of one pair of a ranking of ``size`` answers, for the ``reward`` model or ``dpo``."""
    if algorithm == "reward":
        return 1.0 / comb(size, 2)
    if algorithm == "dpo":
        return 1.0 / (size - 1)
    raise InvalidInput(f"ranking weights are for the reward model and DPO, not {algorithm!r}")


def ranking_weights(rows: Iterable[dict[str, Any]], *, mode: str, algorithm: str) -> list[float]:
    """Each row's weight: a ranking's pair by its K (``mode="judgement"``), every other row 1;
    with ``mode="pair"`` every row 1."""
    if mode not in RANKING_WEIGHTS:
        raise InvalidInput(f"ranking_weight must be one of {', '.join(RANKING_WEIGHTS)}, not {mode!r}")
    out = []
    for i, row in enumerate(rows):
        size = row.get(RANKING_SIZE)
        if (row.get(RANKING_ID) is None) != (size is None):
            raise InvalidInput(f"training row {i}: a ranking's pair has both ranking_id and ranking_size")
        if size is None or mode == "pair":
            out.append(1.0)
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise InvalidInput(
                f"training row {i}: ranking_size is a ranking's number of answers (2 or more), not {size!r}"
            )
        out.append(pair_weight(size, algorithm))
    return out


def ranked_pairs(rows: Iterable[dict[str, Any]]) -> int:
    """How many rows are pairs of a ranking (a run reports it)."""
    return sum(row.get(RANKING_ID) is not None for row in rows)


def needs_weights(weights: Iterable[float]) -> bool:
    """With every weight 1 the loss is the unweighted one: the trainers then run without the column."""
    return any(w != 1.0 for w in weights)


def split_key(row: dict[str, Any], index: int) -> tuple[int, int]:
    """What a held-out split keeps together: a ranking (all its pairs), else a comparison (all its
    votes' rows), else the row alone. Keys sort as comparison ids alone would, so data without
    rankings splits exactly as it always has."""
    ranking = row.get(RANKING_ID)
    if ranking is not None:
        return (1, int(ranking))
    return (0, int(row.get("comparison_id", index)))


def weighted_addition(hard, extra, weights):
    """What to add to a trainer's mean of ``hard`` (TRL's −log σ(x) per pair) so its loss becomes the
    mean of weight × (hard + extra): ``extra`` is the pair's margin/offset and soft-label terms (or
    None), ``weights`` the pairs' weights (or None: every weight 1)."""
    if weights is None:
        return extra.mean() if extra is not None else hard.new_zeros(())
    w = weights.to(device=hard.device, dtype=hard.dtype)
    total = (w - 1) * hard
    if extra is not None:
        total = total + w * extra
    return total.mean()
