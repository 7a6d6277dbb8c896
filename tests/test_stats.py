"""randsmooth.stats against statsmodels and SciPy over grids with their edges, and the paper's Figure 5 claims."""
import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import binomtest, norm
from statsmodels.stats.proportion import proportion_confint

from randsmooth.stats import (binom_pvalue, certified_radius, lower_confidence_bound, max_certifiable_radius,
                              radius_lecuyer, radius_li, samples_for_radius)

ALPHAS = [0.5, 0.1, 0.05, 0.01, 0.001, 1e-6]


def _k_grid(n):
    return np.arange(n + 1) if n <= 200 else np.unique([0, 1, 2, n // 3, n // 2, n - 2, n - 1, n])


@pytest.mark.parametrize("n", [1, 2, 3, 10, 57, 200, 1000, 100_000, 10**7])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_lower_confidence_bound_is_statsmodels_one_sided(n, alpha):
    k = _k_grid(n)
    theirs = proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]
    np.testing.assert_array_equal(lower_confidence_bound(k, n, alpha), theirs)


def test_lower_confidence_bound_edges():
    assert lower_confidence_bound(0, 10, 0.001) == 0.0
    for n in (1, 10, 10**5, 10**9):
        lb = lower_confidence_bound(n, n, 0.001)
        assert lb == pytest.approx(0.001 ** (1 / n), rel=1e-12) and lb < 1
    assert np.isscalar(lower_confidence_bound(3, 10, 0.05))
    assert lower_confidence_bound(np.array([[1, 2], [3, 4]]), 10, 0.05).shape == (2, 2)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 11, 50, 199, 200])
@pytest.mark.parametrize("p", [0.5, 0.0, 1.0, 0.1, 1 / 3, 0.77, 0.999])
def test_binom_pvalue_is_scipy_binomtest(n, p):
    k = np.arange(n + 1)
    theirs = np.array([binomtest(int(i), n, p).pvalue for i in k])
    np.testing.assert_allclose(binom_pvalue(k, n, p), theirs, rtol=1e-12, atol=0)


@pytest.mark.parametrize("n", [1000, 100_000])
def test_binom_pvalue_large_n(n):
    k = _k_grid(n)
    for p in (0.5, 0.2):
        theirs = np.array([binomtest(int(i), n, p).pvalue for i in k])
        np.testing.assert_allclose(binom_pvalue(k, n, p), theirs, rtol=1e-12, atol=0)


def test_certified_radius_theorem1_and_edges():
    p = np.linspace(0.01, 0.99, 99)
    np.testing.assert_allclose(certified_radius(p, 0.5), 0.5 * norm.ppf(p), rtol=1e-15)
    np.testing.assert_allclose(certified_radius(0.9, 2.0, p_b=0.05), (norm.ppf(0.9) - norm.ppf(0.05)), rtol=1e-14)
    np.testing.assert_allclose(certified_radius(p, 1.0, p_b=1 - p), certified_radius(p, 1.0), rtol=1e-9, atol=1e-12)
    assert certified_radius(1.0, 0.25) == np.inf                 # f = c_A almost surely
    assert certified_radius(1.0, 0.25, p_b=0.3) == np.inf
    assert certified_radius(0.4, 0.25, p_b=0.0) == np.inf        # no other class has any mass
    assert certified_radius(0.5, 0.25) == 0.0
    assert certified_radius(0.3, 1.0) < 0                        # nothing certified


def test_monte_carlo_bound_never_certifies_infinity():
    n = np.array([1, 10, 10**3, 10**5, 10**8, 10**12])
    r = certified_radius(lower_confidence_bound(n, n, 1e-3), 1.0)
    assert np.all(np.isfinite(r))
    np.testing.assert_allclose(r, max_certifiable_radius(n, 1e-3, 1.0), rtol=1e-6)


def _brute_lecuyer(pa, pb):
    hi = min(1.0, 0.5 * np.log(pa / pb))
    def neg(b):
        d = (pa - np.exp(2 * b) * pb) / (1 + np.exp(b))
        return -b / np.sqrt(2 * np.log(1.25 / d)) if d > 0 else 0.0
    grid = np.linspace(1e-9, hi, 20001)
    b0 = grid[np.argmin([neg(b) for b in grid])]
    step = grid[1] - grid[0]
    return -minimize_scalar(neg, bounds=(max(1e-12, b0 - step), min(hi, b0 + step)), method="bounded",
                            options={"xatol": 1e-12}).fun


def _brute_li(pa, pb):
    def neg(t):
        a = 1 + np.exp(t)
        m = (0.5 * pa ** (1 - a) + 0.5 * pb ** (1 - a)) ** (1 / (1 - a))
        return 2 / a * np.log(1 - pa - pb + 2 * m)
    grid = np.linspace(-12, 4, 20001)
    t0 = grid[np.argmin([neg(t) for t in grid])]
    step = grid[1] - grid[0]
    return np.sqrt(-minimize_scalar(neg, bounds=(t0 - step, t0 + step), method="bounded", options={"xatol": 1e-12}).fun)


@pytest.mark.parametrize("pa,pb", [(0.55, 0.45), (0.7, 0.3), (0.9, 0.1), (0.99, 0.01), (0.8, 0.1), (0.6, 0.05)])
def test_earlier_bounds_match_brute_force_and_are_looser(pa, pb):
    lec, li = radius_lecuyer(pa, 1.0, p_b=pb), radius_li(pa, 1.0, p_b=pb)
    assert lec == pytest.approx(_brute_lecuyer(pa, pb), rel=1e-6)
    assert li == pytest.approx(_brute_li(pa, pb), rel=1e-6)
    assert lec < li < certified_radius(pa, 1.0, p_b=pb)
    assert radius_li(pa, 0.25, p_b=pb) == pytest.approx(0.25 * li, rel=1e-9)     # both scale with sigma


def test_earlier_bounds_edges():
    assert radius_li(1.0, 1.0) == np.inf and np.isfinite(radius_lecuyer(1.0, 1.0))
    assert radius_lecuyer(0.5, 1.0) == 0.0 and radius_li(0.5, 1.0) == 0.0
    assert radius_lecuyer(0.3, 1.0) == 0.0


def test_figure5_four_sigma_needs_about_1e5_samples():
    "'certifying a radius of 4 sigma with 99.9% confidence would require ~1e5 samples' (Section 3.2.2)."
    for sigma in (0.25, 0.5, 1.0):
        assert max_certifiable_radius(100_000, 0.001, sigma) == pytest.approx(3.8115 * sigma, abs=1e-4 * sigma)
        n = samples_for_radius(4 * sigma, 0.001, sigma)
        assert 10**4.5 < n < 10**5.5
        assert certified_radius(lower_confidence_bound(n, n, 0.001), sigma) >= 4 * sigma
        assert certified_radius(lower_confidence_bound(n - 1, n - 1, 0.001), sigma) < 4 * sigma


@pytest.mark.parametrize("call,msg", [
    (lambda: lower_confidence_bound(5, 10, 0.0), "alpha must lie in (0, 1)"),
    (lambda: lower_confidence_bound(5, 10, 1.0), "alpha must lie in (0, 1)"),
    (lambda: lower_confidence_bound(11, 10, 0.01), "0 <= k <= n"),
    (lambda: lower_confidence_bound(-1, 10, 0.01), "0 <= k <= n"),
    (lambda: lower_confidence_bound(1, 0, 0.01), "n must be at least 1"),
    (lambda: binom_pvalue(1, 2, p=1.5), "p must lie in [0, 1]"),
    (lambda: certified_radius(np.nan, 1.0), "p_a must lie in [0, 1]"),
    (lambda: certified_radius(0.9, 0.0), "sigma must lie in (0, inf)"),
    (lambda: max_certifiable_radius(0, 0.01, 1.0), "n must lie in [1, inf]"),
])
def test_stats_bad_input(call, msg):
    with pytest.raises(ValueError, match=None) as e:
        call()
    assert msg in str(e.value)
