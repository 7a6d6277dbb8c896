"""CERTIFY and PREDICT: randsmooth against the paper's loop, on the same weights, inputs and device, in one process.

    python bench/certify_speed.py                       # CPU: the small MNIST CNN, n = 100,000 (the issue's CPU target)
    python bench/certify_speed.py --device cuda --dataset cifar10 --arch cifar_resnet110 --random-weights
    python bench/certify_speed.py --device cuda --dataset imagenet --arch resnet50 --random-weights --inputs 3

For each input, the paper's loop (bench/reference.py) and then every variant of randsmooth's certify run in turn
(A B1 B2 .. A B1 B2 ..); medians over inputs and their ratios are printed and written to bench/results/<name>.json.
Then the gates: the reference loop is fed randsmooth's own seeded noise, and each variant's classes, radii and counts
are compared with it. Compilation and CUDA-graph recording happen in a warm-up that is timed apart.
Last, the floor: the model's FLOPs at this device's large-matmul rate plus the time to draw the noise, the least time
per input that any implementation could reach here, and so the largest speedup over the reference there can be.
"""
import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from reference import PaperSmooth  # noqa: E402

from randsmooth.core import ESTIMATE, NOISE_BLOCK, SELECT, block_noise, certify, predict  # noqa: E402
from randsmooth.data import dataset_info, get_dataset  # noqa: E402
from randsmooth.logs import device_name, git_commit, write_json  # noqa: E402
from randsmooth.fast import accelerate  # noqa: E402
from randsmooth.models import DEFAULT_ARCH, build_model  # noqa: E402


def parse_variant(v):
    "'float32', 'bf16+channels_last+compile', ... -> accelerate's keyword arguments."
    parts = v.split("+")
    kw = dict(precision=parts[0], channels_last=False, compile=False, cuda_graphs=False)
    for p in parts[1:]:
        if p not in ("channels_last", "compile", "cuda_graphs"): raise SystemExit(f"unknown option {p!r} in {v!r}")
        kw[p] = True
    return kw


def sync(device):
    if device.type == "cuda": torch.cuda.synchronize(device)


def timed(fn, device):
    sync(device); t = time.perf_counter(); out = fn(); sync(device)
    return time.perf_counter() - t, out


def seeded_noise(shape, seed, index, device, n0, n):
    "randsmooth's noise for one input as the reference loop asks for it: noise(phase, start, k) -> eps [k, *shape]."
    def noise(phase, start, k):
        phase, num = ((SELECT, n0), (ESTIMATE, n))[phase]
        first, last = start // NOISE_BLOCK, (start + k - 1) // NOISE_BLOCK
        eps = torch.cat([block_noise(shape, min(NOISE_BLOCK, num - b * NOISE_BLOCK), seed, index, phase, b, device)
                         for b in range(first, last + 1)])             # the blocks exactly as certify draws them
        return eps[start - first * NOISE_BLOCK:][:k]
    return noise


def profile(model, x, a, device):
    "The top operators of one fast certify call, by self time."
    from torch.profiler import ProfilerActivity, profile as prof
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with prof(activities=acts) as p:
        certify(model, x[None], a.sigma, a.n0, a.n, a.alpha, a.fast_batch or a.batch, indices=[0]); sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    ev = sorted(p.key_averages(), key=lambda e: getattr(e, key), reverse=True)
    total = sum(getattr(e, key) for e in ev)
    return [{"op": e.key, "share": round(getattr(e, key) / total, 4), "ms": round(getattr(e, key) / 1e3, 2)}
            for e in ev[:12]]


def matmul_rate(dtype, device, size=4096, repeats=5):
    """FLOP/s of this device's best case: a large square matrix product, fastest of a few. On a GPU, float32 runs as
    its convolutions do: in TF32 where cuDNN is allowed to (PyTorch's default, torch.backends.cudnn.allow_tf32)."""
    a = torch.randn(size, size, dtype=dtype, device=device); b = torch.randn(size, size, dtype=dtype, device=device)
    tf32, torch.backends.cuda.matmul.allow_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        a @ b
        return 2 * size ** 3 / min(timed(lambda: a @ b, device)[0] for _ in range(repeats))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def floor(model, x, a, device):
    """The least time any implementation could take per input here: the model's convolution and matrix-product
    FLOPs at the large-matmul rate ("model"), plus drawing n0 + n standard normals at torch's fastest ("noise":
    one generator, one preallocated buffer), which the reference loop pays too."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc, torch.inference_mode(): model(x.expand(8, *x.shape[1:]))
    flops = fc.get_total_flops() / 8
    rates = {p: matmul_rate(dt, device, a.matmul_size) for p, dt in (("float32", torch.float32), ("bf16", torch.bfloat16))}
    buf, g, draws = torch.empty((1000, *x.shape[1:]), device=device), torch.Generator(device=device), a.n0 + a.n
    def draw():
        for s in range(0, draws, len(buf)): buf[:draws - s].normal_(generator=g)
    draw()
    noise = min(timed(draw, device)[0] for _ in range(3))
    return {"flops_per_sample": flops, "matmul_gflops": {p: r / 1e9 for p, r in rates.items()},
            "tf32": device.type == "cuda" and torch.backends.cudnn.allow_tf32,
            "noise_seconds_per_input": noise,
            "model_seconds_per_input": {p: flops * draws / r for p, r in rates.items()},
            "seconds_per_input": {p: flops * draws / r + noise for p, r in rates.items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist"); ap.add_argument("--arch", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--random-weights", action="store_true", help="untrained weights (timing only); default for "
                    "data sets whose checkpoints are not at hand")
    ap.add_argument("--data-root", default=None, help="read real inputs from here (cifar10, imagenet)")
    ap.add_argument("--sigma", type=float, default=0.25)
    ap.add_argument("--n0", type=int, default=100); ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--batch", type=int, default=1000, help="the reference loop's batch size")
    ap.add_argument("--fast-batch", type=int, default=None, help="randsmooth's batch size (default: --batch)")
    ap.add_argument("--inputs", type=int, default=5, help="inputs certified by each implementation (timed)")
    ap.add_argument("--variants", nargs="+", default=["float32", "float32+channels_last+compile",
                                                       "bf16+channels_last", "bf16+channels_last+compile"])
    ap.add_argument("--predict-inputs", type=int, default=200, help="inputs for the batched PREDICT (n = 100) timing")
    ap.add_argument("--no-gate", action="store_true", help="skip the same-noise comparison")
    ap.add_argument("--profile", action="store_true", help="profile one call of the first variant")
    ap.add_argument("--matmul-size", type=int, default=4096, help="side of the matrices that measure the floor's rate")
    ap.add_argument("--out", default=None, help="results JSON (default bench/results/<device>-<dataset>-<arch>.json)")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    fb = a.fast_batch or a.batch
    arch = a.arch or DEFAULT_ARCH[a.dataset]
    info = dataset_info(a.dataset)
    torch.manual_seed(0)

    if a.random_weights or not info.embedded:
        model, weights = build_model(arch, a.dataset).to(device).eval(), "random"
    else:
        from randsmooth.experiments import RunParams, get_model
        model, ckpt = get_model(RunParams(dataset=a.dataset, arch=arch, sigma=a.sigma, device=a.device, progress=False))
        weights = Path(ckpt).name
    if info.embedded or a.data_root:
        data = get_dataset(a.dataset, "test", a.data_root)
        picks = [i * len(data) // a.inputs for i in range(a.inputs)]           # spread over the split (and its classes)
        xs = torch.stack([data[i][0] for i in picks]).to(device)
        pxs = torch.stack([data[i % len(data)][0] for i in range(a.predict_inputs)]).to(device)
    else:
        xs = torch.rand((a.inputs, *info.shape), device=device)
        pxs = torch.rand((a.predict_inputs, *info.shape), device=device)
    C = info.num_classes
    ref = PaperSmooth(model, C, a.sigma)
    fast = {v: accelerate(model, **parse_variant(v), batch_size=fb) for v in a.variants}

    print(f"{a.dataset} {arch} ({weights} weights) on {device_name(device)}; sigma {a.sigma}, n0 {a.n0}, n {a.n:,}, "
          f"batch {a.batch} (randsmooth: {fb}), {a.inputs} inputs")
    warm = {}
    for v, m in fast.items():                     # compile / record graphs here, not in the timed loop
        warm[v], _ = timed(lambda: certify(m, xs[:1], a.sigma, a.n0, min(a.n, 4 * fb), a.alpha, fb), device)
    timed(lambda: ref.certify(xs[0], a.n0, min(a.n, 4 * a.batch), a.alpha, a.batch), device)

    t_ref, t_fast = [], {v: [] for v in fast}
    for i in range(a.inputs):                     # A B1 B2 ... A B1 B2 ...
        dt, _ = timed(lambda: ref.certify(xs[i], a.n0, a.n, a.alpha, a.batch), device); t_ref.append(dt)
        for v, m in fast.items():
            dt, _ = timed(lambda: certify(m, xs[i:i + 1], a.sigma, a.n0, a.n, a.alpha, fb, indices=[i]), device)
            t_fast[v].append(dt)
        print(f"  input {i}: reference {t_ref[-1]:.3f} s, " + ", ".join(f"{v} {t_fast[v][-1]:.3f} s" for v in fast))

    med_ref = float(np.median(t_ref))
    rows = []
    for v in fast:
        med = float(np.median(t_fast[v]))
        rows.append({"variant": v, "seconds_per_input": med, "reference_seconds_per_input": med_ref,
                     "speedup": med_ref / med, "warmup_seconds": warm[v], "times": t_fast[v]})

    if not a.no_gate:                             # the same noise through both: same classes, radii, counts?
        refs = []
        for i in range(a.inputs):
            (c, r), c0, c1 = ref.certify(xs[i], a.n0, a.n, a.alpha, a.batch,
                                         noise=seeded_noise(xs.shape[1:], 0, i, device, a.n0, a.n))
            refs.append((c, r, c0, c1))
        for row, (v, m) in zip(rows, fast.items()):
            cert = certify(m, xs, a.sigma, a.n0, a.n, a.alpha, fb, indices=range(a.inputs))
            rc = np.array([r[0] for r in refs]); rr = np.array([r[1] for r in refs])
            c0 = np.stack([r[2] for r in refs]); c1 = np.stack([r[3] for r in refs])
            row.update(same_classes=bool((cert.prediction == rc).all()),
                       max_radius_difference=float(np.abs(cert.radius - rr).max()),
                       same_counts=bool((cert.counts0 == c0).all() and (cert.counts == c1).all()),
                       draws_moved=int((np.abs(cert.counts - c1).sum() + np.abs(cert.counts0 - c0).sum()) // 2),
                       draws=int(a.inputs * (a.n0 + a.n)))

    # PREDICT, n = 100: randsmooth on all inputs in one call; the reference one input at a time
    pt_ref, _ = timed(lambda: [ref_predict(ref, x, 100, a.alpha, a.batch) for x in pxs], device)
    m = fast[a.variants[0]]
    predict(m, pxs[:2], a.sigma, 100, a.alpha, fb)
    pt_fast, _ = timed(lambda: predict(m, pxs, a.sigma, 100, a.alpha, fb), device)
    pred = {"inputs": a.predict_inputs, "n": 100, "variant": a.variants[0],
            "ms_per_input": 1e3 * pt_fast / a.predict_inputs, "reference_ms_per_input": 1e3 * pt_ref / a.predict_inputs}

    print(f"\nCERTIFY, median seconds per input over {a.inputs} inputs (reference: {med_ref:.3f} s)")
    for r in rows:
        gate = "" if a.no_gate else (f"   same classes {r['same_classes']}, same counts {r['same_counts']} "
                                     f"({r['draws_moved']} of {r['draws']:,} draws moved), "
                                     f"max |radius diff| {r['max_radius_difference']:.2g}")
        print(f"  {r['variant']:32s} {r['seconds_per_input']:.3f} s   {r['speedup']:.2f}x{gate}")
    print(f"PREDICT n = 100, {a.predict_inputs} inputs: {pred['ms_per_input']:.2f} ms per input batched "
          f"({pred['variant']}), reference {pred['reference_ms_per_input']:.2f} ms, "
          f"{pred['reference_ms_per_input'] / pred['ms_per_input']:.1f}x")

    result = {"benchmark": "certify_speed", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": "python bench/certify_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "device": device_name(device), "device_type": device.type, "torch": torch.__version__,
              "commit": git_commit(), "dataset": a.dataset, "arch": arch, "weights": weights, "sigma": a.sigma,
              "n0": a.n0, "n": a.n, "alpha": a.alpha, "batch": a.batch, "fast_batch": fb, "inputs": a.inputs,
              "certify": rows, "predict": pred}
    result["floor"] = fl = floor(model, xs[:1], a, device)
    print(f"\nthe floor: {fl['flops_per_sample'] / 1e6:.2f} MFLOP per draw; large matmul "
          + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in fl["matmul_gflops"].items())
          + f"; drawing the noise {fl['noise_seconds_per_input']:.3f} s per input")
    for p, t in fl["seconds_per_input"].items():
        m = fl["model_seconds_per_input"][p]
        print(f"  {p}: no implementation below {t:.3f} s per input ({med_ref / t:.2f}x the reference), "
              f"nor below {m:.3f} s even if noise were free ({med_ref / m:.2f}x)")
    if a.profile:
        result["profile"] = profile(fast[a.variants[0]], xs[0], a, device)
        print("\nwhere the time goes (first variant, one input):")
        for p in result["profile"]: print(f"  {p['share']:6.1%}  {p['ms']:9.1f} ms  {p['op']}")
    out = Path(a.out or Path(__file__).parent / "results" / f"{device.type}-{a.dataset}-{arch}.json")
    write_json(result, out)
    print(f"\nwrote {out}")
    return result


def ref_predict(ref, x, n, alpha, batch_size):
    "The paper's PREDICT (code/core.py), on the reference loop."
    from scipy.stats import binomtest
    counts = ref._sample_noise(x, n, batch_size)
    top2 = counts.argsort()[::-1][:2]
    nA, nB = counts[top2[0]], counts[top2[1]]
    return -1 if binomtest(nA, nA + nB, p=0.5).pvalue > alpha else top2[0]


if __name__ == "__main__":
    main()
