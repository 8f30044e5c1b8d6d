"""How much better: a vote's ``strength`` turned into a shift of its pair's preference logit.

A rater may say how much better the chosen answer is: ``strength`` 1 (slightly), 2
(clearly) or 3 (much better); rows without one (not asked, ties, 'both bad') carry none.
With ``use_strength=true`` each pair's Bradley–Terry logit x is shifted by its level's
value s before the loss, −log σ(x − s), and s = 0 where a row has no strength:

- reward model: x = r_chosen − r_rejected and s the level's ``strength_margins`` entry,
  Llama 2's margin (Touvron et al. 2023, §3.2.2), through TRL's own ``margin`` column;
- DPO: x = β·(logratio_chosen − logratio_rejected) and s the level's ``strength_offsets``
  entry, ODPO's offset Δ (Amini et al. 2024), added by :class:`~rlhf.training.soft_dpo.SoftDPOTrainer`.

A soft label (``label_p`` < 1) keeps the shift inside the logit: −log σ(x − s) + (1 − p)(x − s).
A row's float ``margin`` key (written by exports that ask for it) is never read here: the
shift comes from ``strength`` and the run's parameters only. Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from rlhf.dataset_rows import STRENGTH_MARGINS
from rlhf.errors import InvalidInput

STRENGTH = "strength"  # the row key a rater's "how much better" arrives under
OFFSET = "strength_offset"  # the column SoftDPOTrainer's collator carries
LEVELS = ("slightly", "clearly", "much")  # strength 1, 2, 3
# Llama 2's "small" margin scale (slightly 1/3, better 2/3, significantly better 1), the
# gentler of the two it reports (the other is 1, 2, 3): the export's margin column too.
DEFAULT_MARGINS = list(STRENGTH_MARGINS)
# ODPO takes α·log of a continuous score difference; three ordinal levels have no score to take
# the log of. DPO's β·(logratio difference) is the same Bradley–Terry logit a reward model's
# r_chosen − r_rejected is, so the same levels mean the same shift in both trainers.
DEFAULT_OFFSETS = [1 / 3, 2 / 3, 1.0]
# The parameter that holds each algorithm's levels.
LEVEL_PARAM = {"reward": "strength_margins", "dpo": "strength_offsets"}


def strength_shifts(rows: Iterable[dict[str, Any]], levels: list[float]) -> list[float]:
    """s for each row: ``levels[strength - 1]``, or 0.0 where a row has no strength."""
    out = []
    for i, row in enumerate(rows):
        level = row.get(STRENGTH)
        if level is None:
            out.append(0.0)
            continue
        if isinstance(level, bool) or level not in (1, 2, 3):
            raise InvalidInput(f"training row {i}: strength must be 1, 2 or 3 (or absent), not {level!r}")
        out.append(float(levels[int(level) - 1]))
    return out


def rated_pairs(rows: Iterable[dict[str, Any]]) -> int:
    """How many rows say how much better (the run reports it: a run over unrated votes shifts nothing)."""
    return sum(row.get(STRENGTH) is not None for row in rows)


def any_shift(shifts: Iterable[float]) -> bool:
    """With every shift 0 the loss is the unshifted one: DPO then runs without the extra term."""
    return any(s != 0.0 for s in shifts)


def check_strength_params(algorithm: str, params: dict[str, Any], loss_types: list | None) -> None:
    """Validate ``use_strength`` and the levels in place (levels become three floats).

    ``loss_types``: DPO's loss terms (the shift acts on its sigmoid term); None where the
    algorithm has one loss.
    """
    levels_name = LEVEL_PARAM.get(algorithm)
    if levels_name is None:
        return
    if levels_name in params:
        params[levels_name] = _levels(levels_name, params[levels_name])
        if not params.get("use_strength", False):
            raise InvalidInput(f"parameter {levels_name} acts only with use_strength=true", param=levels_name)
    if params.get("use_strength") and loss_types is not None and "sigmoid" not in loss_types:
        raise InvalidInput(
            "use_strength shifts DPO's sigmoid term; loss_type has no 'sigmoid' term to shift",
            param="use_strength",
        )


def misplaced(key: str, algorithm: str) -> str:
    """A hint for a strength parameter given to an algorithm that has another one, or none."""
    if key != "use_strength" and key not in LEVEL_PARAM.values():
        return ""
    if algorithm in LEVEL_PARAM:
        return f"; {algorithm}'s levels are {LEVEL_PARAM[algorithm]}"
    return "; a vote's strength trains the reward model and DPO only"


def _levels(name: str, value: Any) -> list[float]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                raise InvalidInput(f"parameter {name}: cannot read {v!r} as a number", param=name) from None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InvalidInput(f"parameter {name} takes numbers, not {v!r}", param=name)
        out.append(float(v))
    if len(out) != len(LEVELS):
        raise InvalidInput(
            f"parameter {name} takes {len(LEVELS)} numbers, one per strength ({', '.join(LEVELS)}), not {len(out)}",
            param=name,
        )
    if min(out) < 0:
        raise InvalidInput(f"parameter {name} must not be negative (a shift towards the rejected answer)", param=name)
    if out != sorted(out):
        raise InvalidInput(f"parameter {name} must not fall from one strength to the next: {out}", param=name)
    return out


def shift_correction(logits, shifts):
    """log σ(x) − log σ(x − s) per pair: added to TRL's −log σ(x) it gives −log σ(x − s)."""
    import torch.nn.functional as F

    return F.logsigmoid(logits) - F.logsigmoid(logits - shifts.to(logits.dtype))
