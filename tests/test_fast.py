"""The fast path (randsmooth.fast) and the benchmark's reference loop: same certificates, fewer seconds."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from randsmooth import accelerate, certify, predict
from randsmooth.experiments import RunParams, results_path
from randsmooth.models import build_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from certify_speed import seeded_noise  # noqa: E402
from reference import PaperSmooth  # noqa: E402


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return build_model("small_cnn", "mnist").eval()


@pytest.fixture(scope="module")
def digits():
    torch.manual_seed(1)
    return torch.rand(3, 1, 28, 28)


def test_the_paper_loop_fed_our_noise_gives_our_counts(cnn, digits):
    "The reference loop with randsmooth's seeded noise: the very same counts, classes and radii (batch sizes differ)."
    cert = certify(cnn, digits, 0.5, n0=100, n=3000, alpha=0.001, batch_size=700)
    ref = PaperSmooth(cnn, 10, 0.5)
    for i, x in enumerate(digits):
        (c, r), c0, c1 = ref.certify(x, 100, 3000, 0.001, 400, noise=seeded_noise(x.shape, 0, i, "cpu", 100, 3000))
        assert (c0 == cert.counts0[i]).all() and (c1 == cert.counts[i]).all()
        assert c == cert.prediction[i] and abs(r - cert.radius[i]) < 1e-12


def test_compile_and_channels_last_certify_the_same(cnn, digits):
    plain = certify(cnn, digits, 0.5, n0=100, n=2000, batch_size=500)
    fast = certify(accelerate(cnn, channels_last=True, compile=True, batch_size=500), digits, 0.5, n0=100, n=2000,
                   batch_size=500)
    assert (plain.counts == fast.counts).all() and (plain.counts0 == fast.counts0).all()
    assert (plain.prediction == fast.prediction).all() and np.array_equal(plain.radius, fast.radius)


def test_fixed_shape_pads_small_batches_and_returns_only_their_rows(cnn, digits):
    m = accelerate(cnn, compile=True, batch_size=64)
    with torch.inference_mode():
        out = m(digits)
        assert out.shape == (3, 10) and m.batch_size == 64
        assert torch.allclose(out, cnn(digits), atol=1e-5)


def test_bf16_is_a_nearby_classifier(cnn, digits):
    "bf16 moves some draws near decision boundaries, few of them; the logits come back as float32."
    a = predict(cnn, digits, 0.5, n=4000, batch_size=1000)
    b = predict(accelerate(cnn, precision="bf16"), digits, 0.5, n=4000, batch_size=1000)
    moved = np.abs(a.counts - b.counts).sum() // 2
    assert moved < 0.05 * a.counts.sum()


def test_options_are_checked():
    with pytest.raises(ValueError, match="precision must be one of"):
        RunParams(precision="half")
    with pytest.raises(ValueError, match="cuda_graphs needs a model on a CUDA device"):
        accelerate(nn.Linear(2, 2), cuda_graphs=True)


def test_precision_names_its_own_log():
    "A bf16 run writes its own log beside the float32 one, never into it; the speed options write none."
    f32, bf16 = RunParams(), RunParams(precision="bf16")
    assert results_path(f32, "certify", "ck.pt") != results_path(bf16, "certify", "ck.pt")
    assert results_path(bf16, "certify", "ck.pt").name.endswith("-bf16.tsv")
    assert results_path(RunParams(compile=True, channels_last=True), "certify", "ck.pt") == results_path(f32, "certify", "ck.pt")
    assert "precision" in bf16.identity() and "compile" not in bf16.identity()


def test_benchmark_runs_and_its_gate_holds(tmp_path):
    out = tmp_path / "bench.json"
    res = subprocess.run([sys.executable, str(ROOT / "bench/certify_speed.py"), "--dataset", "digits", "--random-weights",
                          "--n", "600", "--inputs", "2", "--batch", "250", "--predict-inputs", "8",
                          "--variants", "float32", "float32+channels_last", "--matmul-size", "256", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "MPLBACKEND": "Agg"})
    assert res.returncode == 0, res.stderr[-4000:]
    r = json.loads(out.read_text())
    assert r["device"] and r["command"].startswith("python bench/certify_speed.py") and len(r["certify"]) == 2
    for v in r["certify"]:
        assert v["same_counts"] and v["same_classes"] and v["max_radius_difference"] < 1e-12 and v["speedup"] > 0
    assert "CERTIFY, median seconds per input" in res.stdout and "PREDICT n = 100" in res.stdout
    # the floor counts the small CNN's multiply-adds on an 8x8 digit: conv 5x5 -> 16 x 4x4, conv 3x3 -> 32 x 2x2,
    # conv 3x3 -> 64 x 1x1, linear 64 -> 128, linear 128 -> 10; two FLOPs each
    macs = 16 * 16 * 25 + 32 * 4 * 16 * 9 + 64 * 32 * 9 + 64 * 128 + 128 * 10
    fl = r["floor"]
    assert fl["flops_per_sample"] == 2 * macs
    for p in ("float32", "bf16"):
        assert fl["seconds_per_input"][p] == pytest.approx(fl["model_seconds_per_input"][p] + fl["noise_seconds_per_input"])
        assert fl["model_seconds_per_input"][p] == pytest.approx(2 * macs * (100 + 600) / (fl["matmul_gflops"][p] * 1e9))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_graphs_and_compile_certify_the_same_on_a_gpu(cnn, digits):
    g, x = cnn.cuda(), digits.cuda()
    plain = certify(g, x, 0.5, n0=100, n=5000, batch_size=1000)
    for kw in ({"cuda_graphs": True}, {"cuda_graphs": True, "compile": True}, {"channels_last": True}):
        fast = certify(accelerate(g, **kw, batch_size=1000), x, 0.5, n0=100, n=5000, batch_size=1000)
        assert (plain.counts == fast.counts).all() and (plain.prediction == fast.prediction).all(), kw
