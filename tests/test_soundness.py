"""The guarantees measured: CERTIFY's radius exceeds the true radius, and PREDICT answers a class other than g(x),
at most alpha of the time, over 10,000 runs per case on base classifiers whose class probabilities are known exactly.

Each check compares a count of failures F over N independent runs with the binomial tail: a correct implementation
exceeds the bound with probability below 1e-9, and the seeds are fixed, so the tests cannot flake.
"""
import numpy as np
import pytest
import torch
from scipy.stats import binom, norm

from randsmooth import ABSTAIN, certify, predict
from randsmooth.stats import certify_failure_rate, predict_failure_rate
from randsmooth.theory import ProjectionClassifier, linear_classifier, smoothed_prediction

TAIL = 1e-9


def upper(N, rate):
    "Largest failure count compatible with a failure rate <= `rate` over N runs (binomial tail 1e-9)."
    return int(binom.isf(TAIL, N, rate))


@pytest.mark.parametrize("p_a,alpha", [(0.8, 0.05), (0.95, 0.05), (0.6, 0.1), (0.99, 0.01)])
def test_certify_radius_exceeds_true_radius_at_most_alpha(p_a, alpha):
    """Two-class linear base classifier: g = f, and the true radius of g is the distance d to the boundary.

    The inputs sit at distance d = sigma Phi^-1(p_A). Each of N runs has its own noise (its own input index).
    """
    sigma, N, n = 0.5, 10_000, 1000
    d = sigma * norm.ppf(p_a)
    f = linear_classifier(torch.tensor([0.6, 0.8]), 0.0)
    x = (-d * torch.tensor([0.6, 0.8], dtype=torch.float64)).float()[None].repeat(N, 1)   # class 0 side
    true_radius = float(f.project(x[:1]).abs())                 # the float32 input's exact distance
    cert = certify(f, x, sigma, n0=64, n=n, alpha=alpha, batch_size=65_536, seed=2024)
    failures = int((cert.radius > true_radius).sum() + (cert.prediction == 1).sum())   # class 1 certified: wrong
    assert failures <= upper(N, alpha), (failures, upper(N, alpha))
    # and the rate is the exact one (Clopper-Pearson, and selection's misses at p_A = 0.6): the check has power
    rate = certify_failure_rate(float(f.probs(x[:1], sigma)[0, 0]), n, alpha, n0=64)
    assert binom.ppf(TAIL, N, rate) <= failures <= upper(N, rate), (failures, rate)


@pytest.mark.parametrize("p_a,alpha", [(0.8, 0.05), (0.99, 0.01)])
def test_sound_certify_radius_exceeds_the_true_radius_at_most_alpha(p_a, alpha):
    """Sound noise: the certificate is about g~, the Gaussian smoothing of f composed with rounding to the grid.

    With f's boundary halfway between two grid points, z_0 = b = (k + 1/2) / 255, f~ is the half-space z_0 > b, so
    g~'s true radius at the origin is b and P(f(rho(D)) = 0) = P(D_0 <= k) = Phi(b / sigma) exactly.
    """
    sigma, N, n = 0.5, 10_000, 1000
    k = int(round(255 * sigma * norm.ppf(p_a) - 0.5))
    b = (k + 0.5) / 255
    f = linear_classifier(torch.tensor([1.0, 0.0]), -b)                     # class 1 iff z_0 > b
    cert = certify(f, torch.zeros(N, 2), sigma, n0=64, n=n, alpha=alpha, batch_size=65_536, seed=2025, noise="sound")
    failures = int((cert.radius > b).sum() + (cert.prediction == 1).sum())
    assert failures <= upper(N, alpha), (failures, upper(N, alpha))
    rate = certify_failure_rate(float(norm.cdf(b / sigma)), n, alpha, n0=64)
    assert binom.ppf(TAIL, N, rate) <= failures <= upper(N, rate), (failures, rate)


def test_certify_with_a_point_estimate_would_fail():
    "The same check rejects an unsound radius: sigma Phi^-1(n_A / n) exceeds the true radius about half the time."
    sigma, N, n, p_a = 0.5, 4000, 1000, 0.8
    d = sigma * norm.ppf(p_a)
    f = linear_classifier(torch.tensor([1.0, 0.0]), 0.0)
    x = torch.tensor([[-d, 0.0]]).repeat(N, 1)
    cert = certify(f, x, sigma, n0=64, n=n, alpha=0.05, batch_size=65_536, seed=7)
    naive = sigma * norm.ppf(np.minimum(cert.n_a / n, 1 - 1e-12))
    assert (naive > abs(float(x[0, 0]))).sum() > upper(N, 0.05)


def three_class(sigma, probs):
    "A base classifier with P(f(0 + eps) = c) = probs (three classes), along the first axis."
    cuts = np.cumsum(probs)[:-1]
    return ProjectionClassifier([1.0, 0.0], sigma * norm.ppf(cuts), [0, 1, 2], 3)


@pytest.mark.parametrize("probs,alpha,n", [((0.4005, 0.3995, 0.2), 0.1, 200), ((0.4005, 0.3995, 0.2), 0.05, 400),
                                           ((0.45, 0.40, 0.15), 0.01, 500)])
def test_predict_answers_a_wrong_class_at_most_alpha(probs, alpha, n):
    "g(0) = class 0; near a tie PREDICT's wrong answers approach alpha/2 (one side of a two-sided test)."
    sigma, N = 1.0, 10_000
    f = three_class(sigma, probs)
    x = torch.zeros(N, 2)
    assert smoothed_prediction(f, x[:1], sigma).item() == 0
    pred = predict(f, x, sigma, n=n, alpha=alpha, batch_size=65_536, seed=99)
    wrong = int(((pred.prediction != 0) & (pred.prediction != ABSTAIN)).sum())
    assert wrong <= upper(N, alpha), (wrong, upper(N, alpha))
    # the count is the one the exact failure rate predicts: a looser or tighter test would be caught
    rate = predict_failure_rate(probs, n, alpha)
    assert rate <= alpha and binom.ppf(TAIL, N, rate) <= wrong <= upper(N, rate), (wrong, rate)
