"""The evidence that a judge beats a coin flip stays a level-α test however often it is re-checked.

Thousands of simulated judges, each checked after every pair it shares with people (as every
snapshot re-checks it): coin-flip judges are passed at most α of the time, where a fixed-sample
one-sided z-test re-run at each look passes far more; a judge right 75 % of the time is passed
within 100 pairs nearly always.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlhf.services.evidence import ALPHA, log_evidence_above_half, shown_above_half

N = 300  # pairs each simulated judge shares with people
SIMS = 4000


def _table(n_max: int) -> np.ndarray:
    """log evidence for every (n, k), k ≤ n ≤ n_max, from the module's function at a few points
    and the same closed form vectorised (checked against each other below)."""
    lg = np.array([math.lgamma(i + 1) for i in range(n_max + 3)])
    table = np.full((n_max + 1, n_max + 1), -np.inf)
    for n in range(n_max + 1):
        m = n + 1
        i = np.arange(m + 1)
        log_pmf = lg[m] - lg[i] - lg[m - i] - m * math.log(2)
        log_cdf = np.logaddexp.accumulate(log_pmf)
        k = np.arange(n + 1)
        log_beta = lg[k] + lg[n - k] - lg[n + 1]
        table[n, : n + 1] = math.log(2) + log_beta + np.minimum(log_cdf[k], 0.0) + n * math.log(2)
    return table


@pytest.fixture(scope="module")
def table():
    t = _table(N)
    for n, k in [(1, 1), (10, 9), (40, 30), (300, 150), (300, 180), (57, 0)]:
        assert t[n, k] == pytest.approx(log_evidence_above_half(k, n), abs=1e-9)
    return t


def _passed(table, p: float, looks: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = np.cumsum(rng.random((SIMS, looks)) < p, axis=1)
    n = np.arange(1, looks + 1)
    return (table[n, k] >= math.log(1 / ALPHA)).any(axis=1)


def test_a_coin_flip_judge_is_passed_at_most_alpha_of_the_time_however_often_it_is_checked(table):
    rate = _passed(table, 0.5, N, seed=1).mean()
    assert rate <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMS), rate
    # What re-running a fixed-sample test at every look would do: pass a coin flip far more often.
    rng = np.random.default_rng(1)
    k = np.cumsum(rng.random((SIMS, N)) < 0.5, axis=1)
    n = np.arange(1, N + 1)
    z = (k - n / 2) / np.sqrt(n / 4)
    naive = (z[:, 9:] >= 1.645).any(axis=1).mean()  # from 10 pairs on
    assert naive > 3 * ALPHA, naive


def test_a_judge_right_three_times_in_four_is_passed_within_a_hundred_pairs(table):
    assert _passed(table, 0.75, 100, seed=2).mean() >= 0.9


def test_the_evidence_grows_with_agreement_and_is_refused_for_impossible_counts():
    assert not shown_above_half(4, 8) and not shown_above_half(9, 10) and shown_above_half(10, 10)
    assert log_evidence_above_half(30, 40) > log_evidence_above_half(25, 40) > log_evidence_above_half(20, 40)
    assert log_evidence_above_half(0, 0) == 0.0
    with pytest.raises(ValueError):
        log_evidence_above_half(5, 4)
