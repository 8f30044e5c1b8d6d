"""Evidence that a rate is above one half, valid however often it is looked at.

Whether a judge's votes may train is decided again at every snapshot, while its overlap with
people grows: a fixed-sample test re-run at each look would pass a coin-flip judge far more
often than its nominal level. The statistic here is a mixture likelihood ratio, of "right with
some probability q, uniform on [½, 1]" against "right half the time", after k successes in n:

    LR = ∫_{½}^{1} 2 q^k (1 − q)^(n−k) dq / 2^(−n)

For any true rate p ≤ ½ each factor has expectation 2(pq + (1 − p)(1 − q)) ≤ 1, so LR is a
nonnegative supermartingale and, by Ville's inequality, P(LR ever reaches 1/α) ≤ α: stopping
at 1/α is a level-α test at every look. With integer counts the integral is exact through the
binomial identity ∫_{½}^{1} q^k (1−q)^(n−k) dq = B(k+1, n−k+1) · P(Binomial(n+1, ½) ≤ k).
"""

from __future__ import annotations

import math

ALPHA = 0.05  # the level: a coin flip is ever taken for better than one with probability ≤ 5 %


def _log_binomial_cdf_half(m: int, k: int) -> float:
    """log P(Binomial(m, ½) ≤ k), summed in log space (exact for any m a count can reach)."""
    if k >= m:
        return 0.0
    terms = [math.lgamma(m + 1) - math.lgamma(i + 1) - math.lgamma(m - i + 1) for i in range(k + 1)]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms)) - m * math.log(2)


def log_evidence_above_half(k: int, n: int) -> float:
    """log LR for k successes in n tries (0 with no tries)."""
    if n <= 0:
        return 0.0
    if not 0 <= k <= n:
        raise ValueError(f"{k} successes in {n} tries")
    log_beta = math.lgamma(k + 1) + math.lgamma(n - k + 1) - math.lgamma(n + 2)
    return math.log(2) + log_beta + _log_binomial_cdf_half(n + 1, k) + n * math.log(2)


def shown_above_half(k: int, n: int, alpha: float = ALPHA) -> bool:
    """Whether k of n is evidence, at level ``alpha`` under continuous monitoring, of a rate above ½."""
    return log_evidence_above_half(k, n) >= math.log(1 / alpha)
