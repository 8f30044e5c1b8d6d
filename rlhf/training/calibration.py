"""From a reward model's margin to a probability: temperature scaling fit on held-out human votes.

The reward model scores both answers of a pair; its margin m = r(chosen) − r(rejected)
says which it prefers, but not how sure it should be. The estimator is one-parameter
temperature scaling (Platt scaling without an intercept: the order of a pair is arbitrary,
so σ(s·m) for one order must equal 1 − σ(s·(−m)) for the other):

    P(the answer the model prefers is right) = σ(s · |m|)

``s`` maximises the likelihood of the held-out votes, each held-out row counting with its
soft label y = ``label_p`` (the share of its votes for the chosen answer):

    s* = argmax Σ y log σ(s m) + (1 − y) log σ(−s m),   s ≥ 0

The objective is concave in s; Newton's method from s = 1 converges in a few steps.
An s of 0 (the margins say nothing) makes every probability ½, so nothing is ever labelled.

Reliability figures are *cross-fitted*: each held-out row's probability comes from an s
fit on the other folds, so the calibration error is not measured on the rows the scale was
fit to. ``ece`` is the expected calibration error over ten equal-width bins of confidence in
[½, 1]; ``brier`` is the mean squared error of P(chosen) against y.

Below :data:`MIN_HELDOUT` held-out comparisons the fit is refused, not guessed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from rlhf.errors import InvalidInput

MIN_HELDOUT = 20
FOLDS = 5
_BINS = 10


@dataclass(frozen=True)
class Calibration:
    scale: float  # s: P(preferred answer right) = sigmoid(scale * |margin|)
    heldout: int  # held-out comparisons fit on
    accuracy: float  # share of held-out votes the margin's sign agrees with (soft: weighted by label_p)
    ece: float  # cross-fitted expected calibration error
    brier: float  # cross-fitted Brier score of P(chosen)
    log_loss: float  # cross-fitted, per held-out row

    def probability(self, margin: float) -> float:
        """P(the answer with the higher reward is the better one)."""
        return _sigmoid(self.scale * abs(margin))

    def as_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def fit_scale(margins: list[float], targets: list[float], iterations: int = 50) -> float:
    """s ≥ 0 maximising the soft-label likelihood of σ(s·m) (Newton's method on a concave objective)."""
    s = 1.0
    for _ in range(iterations):
        grad = hess = 0.0
        for m, y in zip(margins, targets):
            p = _sigmoid(s * m)
            grad += (y - p) * m
            hess += p * (1 - p) * m * m
        if hess <= 1e-12:
            break
        step = grad / hess
        new = max(0.0, s + step)
        if abs(new - s) < 1e-9:
            s = new
            break
        s = new
    return s


def _figures(margins: list[float], targets: list[float], probs: list[float]) -> tuple[float, float, float]:
    """(ece, brier, log loss) of predicted P(chosen) ``probs`` against soft labels ``targets``."""
    brier = sum((p - y) ** 2 for p, y in zip(probs, targets)) / len(probs)
    eps = 1e-12
    log_loss = -sum(
        y * math.log(max(p, eps)) + (1 - y) * math.log(max(1 - p, eps)) for p, y in zip(probs, targets)
    ) / len(probs)
    bins: list[list[tuple[float, float]]] = [[] for _ in range(_BINS)]
    for m, p, y in zip(margins, probs, targets):
        confidence, right = (p, y) if m >= 0 else (1 - p, 1 - y)
        bins[min(_BINS - 1, int((confidence - 0.5) * 2 * _BINS))].append((confidence, right))
    ece = sum(abs(sum(c for c, _ in b) / len(b) - sum(r for _, r in b) / len(b)) * len(b) for b in bins if b) / len(
        probs
    )
    return ece, brier, log_loss


def calibrate(margins: list[float], targets: list[float], min_heldout: int = MIN_HELDOUT) -> Calibration:
    """Fit the scale on held-out margins r(chosen) − r(rejected) and their rows' ``label_p``."""
    if len(margins) != len(targets):
        raise ValueError("one target per margin")
    if len(margins) < min_heldout:
        raise InvalidInput(
            f"only {len(margins)} held-out human comparisons to calibrate on; at least {min_heldout} "
            "are needed. Train the reward model on more votes, or with a larger eval_fraction"
        )
    scale = fit_scale(margins, targets)
    accuracy = sum((y if m > 0 else (1 - y) if m < 0 else 0.5) for m, y in zip(margins, targets)) / len(margins)
    probs = [0.0] * len(margins)
    for fold in range(FOLDS):
        train = [i for i in range(len(margins)) if i % FOLDS != fold]
        s = fit_scale([margins[i] for i in train], [targets[i] for i in train])
        for i in range(fold, len(margins), FOLDS):
            probs[i] = _sigmoid(s * margins[i])
    ece, brier, log_loss = _figures(margins, targets, probs)
    return Calibration(scale=scale, heldout=len(margins), accuracy=accuracy, ece=ece, brier=brier, log_loss=log_loss)
