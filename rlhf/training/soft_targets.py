"""Per-pair soft labels: what each preference row's loss is trained towards.

Each row may carry ``label_p``, the probability that its label (chosen over rejected)
is right, worked out from the votes when the snapshot was taken
(:mod:`rlhf.services.soft_labels`). A run then trains on

    p' = p (1 - ε) + (1 - p) ε

where ε is the run's ``label_smoothing``: the flip probability of conservative DPO,
applied on top of what the votes say. This is *not* TRL's ``label_smoothing``, which
only its ``robust``, ``exo_pair`` and ``aot*`` losses read (and TRL's ``sigmoid`` loss
ignores); to pass TRL's own, use ``trl.label_smoothing``.

The preference term is the cross-entropy of the Bradley–Terry probability σ(x) against
p', with x the pair's logit (β·Δ for DPO, r_chosen − r_rejected for a reward model):

    −(p' log σ(x) + (1 − p') log σ(−x)) = −log σ(x) + (1 − p') x

so a trainer keeps its own hard-label term and adds (1 − p')·x; the gradient with
respect to x is σ(x) − p' (a hard label: σ(x) − 1). Nothing here imports torch at
import time: the worker and the web process may read it.
"""

from __future__ import annotations

from collections.abc import Iterable

LABEL_P = "label_p"  # the column the collators carry and the trainers read


def training_targets(rows: Iterable[dict], *, soft_labels: bool, label_smoothing: float) -> list[float]:
    """p' for each row: the votes' p (1 with ``soft_labels`` off, or when a row has none), smoothed by ε."""
    eps = float(label_smoothing)
    out = []
    for row in rows:
        p = float(row.get(LABEL_P, 1.0)) if soft_labels else 1.0
        out.append(p * (1 - eps) + (1 - p) * eps)
    return out


def needs_soft_term(targets: Iterable[float]) -> bool:
    """With every target at 1 the extra term is zero: the plain trainer is used, bit for bit as before."""
    return any(t < 1.0 for t in targets)


def soft_correction(logits, p):
    """(1 − p)·x per pair: added to TRL's −log σ(x) it gives the soft-label cross-entropy."""
    return (1 - p.to(logits.dtype)) * logits


def soft_preference_loss(logits, p):
    """The whole per-pair term, −log σ(x) + (1 − p)·x (what the two trainers compute in two parts)."""
    import torch.nn.functional as F

    return -F.logsigmoid(logits) + soft_correction(logits, p)
