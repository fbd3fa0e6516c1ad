"""The paired comparison's statistics against published values."""

import math

import pytest

from engine.stats import mcnemar_exact, paired_difference


@pytest.mark.parametrize("gained,lost,p", [
    (1, 7, 0.0703125),       # 2 * (1 + 8) / 2**8, scipy.stats.binomtest(1, 8).pvalue
    (7, 1, 0.0703125),       # symmetric
    (10, 0, 0.001953125),    # 2 / 2**10
    (3, 3, 1.0),             # a tie is no evidence
    (0, 0, 1.0),             # no discordant pair at all
    (6, 16, 0.052478790283203125),  # binomtest(6, 22): the Fagerland et al. table below
])
def test_mcnemar_exact_known_values(gained, lost, p):
    assert mcnemar_exact(gained, lost) == pytest.approx(p, rel=1e-12)


def test_mcnemar_exact_large_counts_stay_exact():
    # 1,019 problems, 40 flips against 20: far beyond float factorials; p < 0.05 but not < 0.01
    p = mcnemar_exact(40, 20)
    assert 0.01 < p < 0.05
    assert mcnemar_exact(500, 500) == 1.0


def test_mcnemar_refuses_negative_counts():
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_paired_difference_matches_newcombe_square_and_add():
    # Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables", ch. 8:
    # the table [[59, 6], [16, 80]] gives -0.0621 (95% CI -0.1186 to -0.0046)
    d, (lo, hi) = paired_difference(59, 16, 6, 80)  # B right in 6 + 59, A in 16 + 59
    assert d == pytest.approx(-0.0621, abs=5e-5)
    assert (lo, hi) == (pytest.approx(-0.1186, abs=5e-5), pytest.approx(-0.0046, abs=5e-5))


def test_paired_difference_edges():
    assert paired_difference(0, 0, 0, 0) == (0.0, (0.0, 0.0))
    d, (lo, hi) = paired_difference(0, 0, 10, 0)  # B right everywhere A was wrong
    assert d == 1.0 and hi == 1.0 and 0 < lo < 1
    d, (lo, hi) = paired_difference(30, 0, 0, 70)  # the same outcomes: no change, a narrow interval around 0
    assert d == 0 and lo <= 0 <= hi and hi - lo < 0.1
    assert not math.isnan(lo)
