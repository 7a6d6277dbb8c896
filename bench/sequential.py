"""The sequential method against CERTIFY: forward passes per input, certified accuracy and wall time.

    python bench/sequential.py                   # everything below; the MNIST runs resume if interrupted
    python bench/sequential.py --stage paper     # only the paper's logs, simulated (a minute or two)

MNIST (all 1,000 embedded test digits, the shipped models, alpha = 0.001, n_max = n = 100,000):
  - the sequential method's logs are the grid rows with method 'sequential' (run here with run_certify, resumable;
    `randsmooth reproduce` makes them too); CERTIFY's are the grid rows with n = 100,000 (made by `randsmooth
    reproduce`, about 20 minutes each on two cores; a missing one is reported, not run);
  - the wall-time ratio is measured here, in one process, on the first --timed digits: CERTIFY, then the sequential
    method at each setting, chunk by chunk, so that the machine's load falls on all of them alike.
The paper's logs (CIFAR-10 and ImageNet, noise = sigma): each log's radii imply counts n_A at its n = 100,000 and
alpha (analyze.n_a_of); a base classifier whose class probability is exactly n_A / n (a threshold on a
one-dimensional input) goes through certify_sequential itself, and its certified accuracy is compared with the log's.
Results: bench/results/sequential.json (read by nbs/benchmarks.ipynb and nbs/results_sequential.ipynb).
"""
import argparse
import datetime
import inspect
import sys
import time

import numpy as np
import torch
from scipy.stats import norm

from randsmooth.analyze import n_a_of
from randsmooth.core import certify
from randsmooth.data import get_dataset
from randsmooth.experiments import RunParams, get_model, run_certify
from randsmooth.logs import certified_accuracy, device_name, git_commit, project_dir, read_json, read_log, write_json
from randsmooth.reproduce import is_complete, log_path, read_grid, select
from randsmooth.sequential import all_agree_draws, certify_sequential, samples_floor
from randsmooth.stats import lower_confidence_bound

GRIDS = {"grid": [0.25, 0.5, 0.75, 1.0], "r = 0.5": [0.5]}
TARGETS = {(0.5, "grid"): 20, (0.25, "grid"): 8, (0.5, "r = 0.5"): 100, (0.25, "r = 0.5"): 80}   # the issue's
N0, N, ALPHA = 100, 100_000, 0.001
BINS = [0, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 100_000]   # histogram of samples
FINAL = inspect.signature(certify_sequential).parameters["final"].default   # alpha's share kept for the n_max test


def floor_figures(sigma, radii, alpha, n_max):
    "The floor (the fewest draws any sound test needs if every draw agrees) and the method's, at the top radius reached."
    p0 = norm.cdf(np.array(radii) / sigma)
    reach = all_agree_draws(p0, alpha * (1 - FINAL), n_max)   # the sequence's share of alpha; the floor's is all
    if not np.isfinite(reach).any(): return {"top_radius": None, "floor": None, "method": None, "method_over_floor": None}
    top = int(np.flatnonzero(np.isfinite(reach))[-1])          # the largest radius n_max agreeing draws certify
    floor = float(samples_floor(p0[top], alpha))
    return {"top_radius": radii[top], "floor": floor, "method": float(reach[top]), "method_over_floor": reach[top] / floor}


def summary(samples, acc_seq, acc_cert, certify_samples):
    "The figures of one setting."
    diff = 100 * np.abs(np.array(acc_seq) - np.array(acc_cert))
    return {"inputs": len(samples), "mean_samples": float(np.mean(samples)), "median_samples": float(np.median(samples)),
            "max_samples": int(np.max(samples)), "certify_samples": certify_samples,
            "ratio": certify_samples / float(np.mean(samples)),
            "accuracy_sequential": [float(a) for a in acc_seq], "accuracy_certify": [float(a) for a in acc_cert],
            "max_difference_points": float(diff.max()),
            "histogram": {"edges": BINS, "counts": np.histogram(samples, BINS)[0].tolist()}}


def mnist_runs(progress):
    "The sequential grid rows of MNIST (run if missing), beside CERTIFY's n = 100,000 logs."
    grid, out = read_grid(), []
    for _, row in select(grid, source="ours", dataset="mnist", method="sequential").iterrows():
        sigma, radii = float(row["sigma"]), list(row["radii"])
        name = next(k for k, v in GRIDS.items() if v == radii)
        log = run_certify(dataset="mnist", sigma=sigma, n=int(row["n"]), alpha=float(row["alpha"]), method="sequential",
                          radii=radii, progress=progress)
        seq = read_log(log)
        cert_row = select(grid, source="ours", dataset="mnist", arch="small_cnn", kind="certify", method="certify",
                          precision="float32", n=N).query("noise == sigma and sigma == @sigma").iloc[0]
        entry = {"data": "mnist", "sigma": sigma, "setting": name, "radii": radii, "alpha": float(row["alpha"]),
                 "n_max": int(row["n"]), "target": TARGETS[(sigma, name)], "log": str(log.relative_to(project_dir())),
                 "wall_seconds": read_json(log.with_suffix(".json")).get("wall_seconds"),
                 **floor_figures(sigma, radii, float(row["alpha"]), int(row["n"]))}
        if is_complete(cert_row):
            cert = read_log(log_path(cert_row))
            entry.update(summary(seq["samples"], certified_accuracy(seq, radii), certified_accuracy(cert, radii), N0 + N),
                         certify_log=str(log_path(cert_row).relative_to(project_dir())))
        else:
            print(f"CERTIFY's n = {N:,} log for sigma = {sigma:g} is not complete yet: run `randsmooth reproduce "
                  f"--dataset mnist`; comparing samples only")
            entry.update(summary(seq["samples"], certified_accuracy(seq, radii), [np.nan] * len(radii), N0 + N))
        out.append(entry)
        print(f"mnist sigma {sigma:g} {name}: {entry['ratio']:.1f}x fewer forward passes than CERTIFY "
              f"(target {entry['target']}x), accuracy within {entry['max_difference_points']:.2f} points")
    return out


def timed_pair(digits, chunk=10):
    "Wall time of CERTIFY and of the sequential method at each setting, on the same digits, chunk by chunk."
    data = get_dataset("mnist", "test")
    models = {s: get_model(RunParams(dataset="mnist", sigma=s, train_if_missing=False))[0] for s in (0.25, 0.5)}
    idx = list(range(digits))
    t = {"certify": {s: 0.0 for s in models}, **{(s, g): 0.0 for s in models for g in GRIDS}}
    passes = {(s, g): 0 for s in models for g in GRIDS}
    for c in range(0, digits, chunk):
        ids = idx[c:c + chunk]
        x, y = torch.stack([data[i][0] for i in ids]), np.array([int(data[i][1]) for i in ids])
        for s, model in models.items():
            t0 = time.perf_counter(); certify(model, x, s, N0, N, ALPHA, 1000, indices=ids)
            t["certify"][s] += time.perf_counter() - t0
            for g, radii in GRIDS.items():
                t0 = time.perf_counter()
                r = certify_sequential(model, x, s, radii, ALPHA, N, label=y, batch_size=1000, indices=ids)
                t[(s, g)] += time.perf_counter() - t0
                passes[(s, g)] += int(r.samples.sum())
        print(f"timed {c + len(ids)} of {digits} digits", flush=True)
    return [{"sigma": s, "setting": g, "digits": digits, "certify_seconds": t["certify"][s],
             "sequential_seconds": t[(s, g)], "wall_ratio": t["certify"][s] / t[(s, g)],
             "pass_ratio": digits * (N0 + N) / passes[(s, g)]} for s in models for g in GRIDS]


class Threshold(torch.nn.Module):
    "f(z) = 0 if z > 0 else 1 on one-dimensional inputs: at x = sigma Phi^-1(p), P(f(x + eps) = 0) = p exactly."
    def forward(self, z): return torch.cat([z, -z], dim=1)


def paper_simulations():
    "The paper's certification logs (noise = sigma), simulated from the counts their radii imply."
    out, grid = [], read_grid()
    for _, row in select(grid, source="paper", kind="certify", split="test").query("noise == sigma").iterrows():
        sigma, alpha, df = float(row["sigma"]), float(row["alpha"]), read_log(log_path(row))
        n_a = n_a_of(df, sigma, N, alpha)
        p = np.where(df["correct"] == 1, np.minimum(n_a, N - 0.5) / N, 0.5)   # wrong or abstained: at 1/2 (see text)
        x = torch.tensor(sigma * norm.ppf(p), dtype=torch.float64)[:, None]
        for name, radii in GRIDS.items():
            try:
                r = certify_sequential(Threshold(), x, sigma, radii, alpha, N, label=np.zeros(len(df), int),
                                       batch_size=50_000, indices=df["idx"].tolist())
            except ValueError as e:                                 # every radius beyond n's ceiling at this sigma
                print(f"{row['dataset']} sigma {sigma:g} {name}: skipped, {e}"); continue
            got = [float(((r.radius >= q) & (r.prediction == 0)).mean()) for q in radii]
            entry = {"data": row["dataset"], "sigma": sigma, "setting": name, "radii": radii, "alpha": alpha,
                     "n_max": N, "target": None, "log": row["log"], **floor_figures(sigma, radii, alpha, N),
                     **summary(r.samples, got, certified_accuracy(df, radii), N0 + N)}
            k = np.random.default_rng(0).binomial(N, p)             # CERTIFY again, on the same p (see text)
            lcb = lower_confidence_bound(k, N, alpha)
            again = np.where((lcb > 0.5) & (df["correct"] == 1), sigma * norm.ppf(np.maximum(lcb, 0.5)), -1.0)
            entry["accuracy_certify_simulated"] = [float((again >= q).mean()) for q in radii]
            entry["max_difference_points_simulated"] = float(100 * np.abs(
                np.array(got) - np.array(entry["accuracy_certify_simulated"])).max())
            out.append(entry)
            print(f"{row['dataset']} sigma {sigma:g} {name}: {entry['ratio']:.1f}x fewer, accuracy within "
                  f"{entry['max_difference_points']:.2f} points of the log's, "
                  f"{entry['max_difference_points_simulated']:.2f} of CERTIFY simulated", flush=True)
    return out


def main(argv=None):
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--stage", choices=["all", "mnist", "timed", "paper"], default="all")
    a.add_argument("--timed", type=int, default=50, help="digits for the wall-time ratio")
    a.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    args = a.parse_args(argv)
    path = project_dir() / "bench" / "results" / "sequential.json"
    old = read_json(path) if path.exists() else {}
    result = {"benchmark": "sequential", **{k: old.get(k) for k in ("mnist", "timed", "paper")}}
    stages = {"mnist": lambda: mnist_runs(args.progress), "timed": lambda: timed_pair(args.timed),
              "paper": paper_simulations}
    for name, run in stages.items():
        if args.stage not in ("all", name): continue
        t0 = time.perf_counter()
        rows = run()
        result[name] = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv),
                        "device_name": device_name("cpu"), "git_commit": git_commit(),
                        "torch_threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - t0, 1),
                        "rows": rows}
    write_json(result, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
