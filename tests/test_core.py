"""PREDICT / CERTIFY: reproducibility, batch-size independence, the paper's interface, and a clear error for every bad input."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from helpers import book_build
from randsmooth import ABSTAIN, Smooth, certify, predict
from randsmooth.core import ESTIMATE, SELECT, block_noise
from randsmooth.theory import linear_classifier


def small_cnn(num_classes=10):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(72, num_classes)).eval()


@pytest.fixture(scope="module")
def cnn_inputs():
    return small_cnn(), torch.rand(5, 1, 12, 12, generator=torch.Generator().manual_seed(1))


@pytest.fixture()
def all_cores():
    "torch on every core for one test (an xdist worker has its share of them): batching is checked multi-threaded."
    before = torch.get_num_threads()
    torch.set_num_threads(book_build.cores())
    yield
    torch.set_num_threads(before)


# --- 5. Bad input is a clear error -------------------------------------------------------------------------------------

LIN = linear_classifier(torch.tensor([1.0, 0.0]), 0.0)
X = torch.zeros(3, 2)


def nan_model(b):
    return torch.full((len(b), 2), float("nan"))


BAD = {
    "sigma zero": (lambda: certify(LIN, X, 0.0, n=10), "sigma must lie in (0, inf)"),
    "sigma negative": (lambda: predict(LIN, X, -0.25, n=10), "sigma must lie in (0, inf)"),
    "sigma nan": (lambda: certify(LIN, X, float("nan"), n=10), "sigma must lie in (0, inf)"),
    "Smooth sigma": (lambda: Smooth(LIN, 2, 0.0), "sigma must lie in (0, inf)"),
    "alpha zero": (lambda: certify(LIN, X, 0.5, n=10, alpha=0.0), "alpha must lie in (0, 1)"),
    "alpha one": (lambda: predict(LIN, X, 0.5, n=10, alpha=1.0), "alpha must lie in (0, 1)"),
    "alpha above one": (lambda: Smooth(LIN, 2, 0.5).certify(X[0], 10, 10, 1.5, 10), "alpha must lie in (0, 1)"),
    "n0 zero": (lambda: certify(LIN, X, 0.5, n0=0, n=10), "n0 must be an integer >= 1"),
    "n zero": (lambda: certify(LIN, X, 0.5, n=0), "n must be an integer >= 1"),
    "n negative": (lambda: predict(LIN, X, 0.5, n=-5), "n must be an integer >= 1"),
    "n not whole": (lambda: certify(LIN, X, 0.5, n=100.5), "n must be an integer >= 1"),
    "batch zero": (lambda: certify(LIN, X, 0.5, n=10, batch_size=0), "batch_size must be an integer >= 1"),
    "Smooth batch zero": (lambda: Smooth(LIN, 2, 0.5).predict(X[0], 10, 0.01, 0), "batch_size must be an integer >= 1"),
    "width mismatch": (lambda: certify(LIN, X, 0.5, n=10, num_classes=3), "returns 2 classes per input, but num_classes=3"),
    "Smooth width": (lambda: Smooth(LIN, 10, 0.5).certify(X[0], 10, 10, 0.01, 10), "num_classes=10"),
    "x nan": (lambda: certify(LIN, torch.tensor([[float("nan"), 0.0]]), 0.5, n=10), "NaN or infinite"),
    "x inf": (lambda: predict(LIN, torch.tensor([[0.0, -float("inf")]]), 0.5, n=10), "NaN or infinite"),
    "Smooth x nan": (lambda: Smooth(LIN, 2, 0.5).certify(torch.tensor([0.0, float("nan")]), 10, 10, 0.01, 10), "NaN or infinite"),
    "model nan": (lambda: certify(nan_model, X, 0.5, n=10), "returned NaN or infinite logits"),
    "model inf": (lambda: predict(lambda b: torch.full((len(b), 2), float("inf")), X, 0.5, n=10), "returned NaN or infinite"),
    "shape rejected": (lambda: certify(nn.Linear(5, 2), X, 0.5, n=10), "rejected a batch of noisy inputs of shape"),
    "image shape rejected": (lambda: predict(small_cnn(), torch.rand(2, 3, 12, 12), 0.5, n=10), "rejected a batch"),
    "single input unbatched": (lambda: certify(LIN, torch.zeros(2), 0.5, n=10), "x must be a batch of inputs"),
    "logits not 2-d": (lambda: predict(lambda b: torch.zeros(len(b)), X, 0.5, n=10), "must return logits [batch, num_classes]"),
    "indices length": (lambda: certify(LIN, X, 0.5, n=10, indices=[0, 1]), "indices has 2 entries for 3 inputs"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_clear_error(case):
    call, msg = BAD[case]
    with pytest.raises(ValueError) as e:
        call()
    assert msg in str(e.value)


def test_shape_error_comes_before_any_certificate():
    "A model that rejects the input fails on its first batch, not after a long run."
    calls = []
    def model(b):
        calls.append(len(b))
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    with pytest.raises(ValueError, match="The model said: mat1"):
        certify(model, X, 0.5, n=10_000, batch_size=100)
    assert calls == [100]


# --- Reproducibility -----------------------------------------------------------------------------------------------------

def _certify(model, x, **kw):
    args = dict(sigma=0.5, n0=50, n=700, alpha=0.01, batch_size=128, seed=3) | kw
    return certify(model, x, **args)


def test_same_seed_same_certificate(cnn_inputs):
    model, x = cnn_inputs
    a, b = _certify(model, x), _certify(model, x)
    for f in ("prediction", "radius", "p_a_lower", "counts0", "counts"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.counts, _certify(model, x, seed=4).counts)


@pytest.mark.parametrize("batch_size", [1, 7, 256, 257, 10_000])
def test_counts_bit_identical_whatever_the_batch_size(cnn_inputs, batch_size, all_cores):
    model, x = cnn_inputs
    ref = _certify(model, x)
    got = _certify(model, x, batch_size=batch_size)
    np.testing.assert_array_equal(got.counts0, ref.counts0)
    np.testing.assert_array_equal(got.counts, ref.counts)
    np.testing.assert_array_equal(got.radius, ref.radius)
    p_ref = predict(model, x, 0.5, n=300, batch_size=64, seed=3)
    p_got = predict(model, x, 0.5, n=300, batch_size=batch_size, seed=3)
    np.testing.assert_array_equal(p_got.counts, p_ref.counts)


def test_an_input_gets_the_same_certificate_alone_or_in_a_batch(cnn_inputs, all_cores):
    "The noise is keyed by the input's index, so batching inputs together changes nothing."
    model, x = cnn_inputs
    full = _certify(model, x)
    alone = _certify(model, x[3:4], indices=[3])
    np.testing.assert_array_equal(alone.counts[0], full.counts[3])
    assert alone[0].radius == full[3].radius and alone[0].prediction == full[3].prediction


def test_selection_and_estimation_are_independent():
    """If CERTIFY picked c_A on the draws it then counts, n_A/n would be biased above p_A.

    A base classifier that answers 0 or 1 with probability 1/2 each: with independent phases, E[n_A/n] = 1/2
    exactly, whatever c_A hat is. Shared draws (n0 a prefix of n) would add about 0.02 here, 35 standard errors.
    """
    f = linear_classifier(torch.tensor([1.0, 0.0]), 0.0)        # x = 0 sits on the boundary: p = 1/2 exactly
    N, n0, n = 4000, 100, 200
    cert = certify(f, torch.zeros(N, 2), 1.0, n0=n0, n=n, alpha=0.01, batch_size=50_000, seed=11)
    mean = cert.n_a.mean() / n
    se = 0.5 / np.sqrt(N * n)
    assert abs(mean - 0.5) < 6 * se, mean
    a, b = block_noise((1000,), 256, 11, 0, SELECT, 0, "cpu"), block_noise((1000,), 256, 11, 0, ESTIMATE, 0, "cpu")
    assert abs(np.corrcoef(a.flatten(), b.flatten())[0, 1]) < 6 / np.sqrt(a.numel())


# --- The paper's interface ---------------------------------------------------------------------------------------------

def test_smooth_matches_the_paper_interface(cnn_inputs):
    model, x = cnn_inputs
    s = Smooth(model, num_classes=10, sigma=0.25)
    assert Smooth.ABSTAIN == -1 == ABSTAIN
    torch.manual_seed(0)
    c1 = s.certify(x[0], 100, 1000, 0.001, 250)
    p1 = s.predict(x[0], 100, 0.001, 50)
    assert isinstance(c1[0], int) and isinstance(c1[1], float) and isinstance(p1, int)
    torch.manual_seed(0)
    assert s.certify(x[0], 100, 1000, 0.001, 250) == c1 and s.predict(x[0], 100, 0.001, 50) == p1
    fixed = Smooth(model, 10, 0.25, seed=5)
    assert fixed.certify(x[0], 100, 1000, 0.001, 999) == fixed.certify(x[0], 100, 1000, 0.001, 1)
    cert = certify(model, x[:1], 0.25, 100, 1000, 0.001, seed=5)[0]
    assert fixed.certify(x[0], 100, 1000, 0.001, 100) == (int(cert.prediction), float(cert.radius))


def test_abstention_returns_zero_radius():
    c, r = Smooth(LIN, 2, 1.0, seed=0).certify(torch.zeros(2), 100, 1000, 0.001, 500)   # on the boundary
    assert (c, r) == (Smooth.ABSTAIN, 0.0)


def test_models_without_parameters_and_numpy_inputs_work():
    cert = certify(lambda b: torch.stack([b[:, 0], -b[:, 0]], 1), np.ones((2, 3)), 0.5, n0=20, n=200, alpha=0.01)
    assert (cert.prediction == 0).all() and (cert.radius > 0).all()


def test_training_mode_warns():
    "Batch norm in training mode would make answers depend on the batch: say so; stay quiet in eval mode."
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    with pytest.warns(UserWarning, match="model.eval"):
        predict(model, torch.zeros(2, 4), 0.5, n=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict(model.eval(), torch.zeros(2, 4), 0.5, n=20)


def test_certificate_fields_and_indexing(cnn_inputs):
    model, x = cnn_inputs
    cert = _certify(model, x)
    assert len(cert) == 5 and cert.counts.shape == (5, 10) and cert.counts0.shape == (5, 10)
    assert (cert.counts.sum(1) == 700).all() and (cert.counts0.sum(1) == 50).all()
    one = cert[2]
    assert one.counts.shape == (10,) and one.n_a == one.counts[np.argmax(cert.counts0[2])]
    ok = cert.prediction != ABSTAIN
    assert (cert.radius[~ok] == 0).all() and (cert.p_a_lower[ok] > 0.5).all()
