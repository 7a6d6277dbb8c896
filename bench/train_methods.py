"""What each training method costs: seconds per epoch of LeNet on the 4,000 embedded MNIST training digits, each
method with its authors' MNIST settings (TrainConfig's defaults), against Gaussian augmentation in the same process.

    python bench/train_methods.py                 # sigma 0.5, 2 epochs each, methods in turn (about 5 minutes)
    python bench/train_methods.py --epochs 1 --methods gaussian consistency

Each method is timed over --epochs epochs as the training log times them (data loading and setup left out),
the methods one after another, twice in alternating order, and the faster of the two kept, so that a load that comes
and goes falls on all alike. The ratios to Gaussian augmentation are the figures to quote; the seconds depend on the
machine and its load. Results: bench/results/train-methods.json.
"""
import argparse
import datetime
import tempfile

import torch

from randsmooth.logs import device_name, git_commit, project_dir, write_json
from randsmooth.train import METHODS, TrainConfig, train


def seconds_per_epoch(method, sigma, epochs):
    "Seconds per epoch of a fresh training run, as its log times them (an epoch and its test evaluation, no setup)."
    with tempfile.TemporaryDirectory() as d:
        _, history = train(TrainConfig(arch="lenet", sigma=sigma, epochs=epochs, lr=0.01, method=method),
                           f"{d}/m.pt", progress=False)
        return sum(h["seconds"] for h in history) / epochs


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sigma", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    a = ap.parse_args()
    methods = ["gaussian"] + [m for m in a.methods if m != "gaussian"]
    best = {}
    for order in (methods, methods[::-1]):
        for m in order:
            s = seconds_per_epoch(m, a.sigma, a.epochs)
            best[m] = min(best.get(m, s), s)
            print(f"{m:12s} {s:7.2f} s per epoch", flush=True)
    result = {"benchmark": "train_methods", "command": "python bench/train_methods.py " + " ".join(
                  f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(a).items()),
              "device": device_name("cpu"), "threads": torch.get_num_threads(), "git_commit": git_commit(),
              "date": datetime.datetime.now().isoformat(timespec="seconds"), "sigma": a.sigma, "epochs": a.epochs,
              "seconds_per_epoch": {m: round(best[m], 3) for m in methods},
              "ratio_to_gaussian": {m: round(best[m] / best["gaussian"], 2) for m in methods}}
    write_json(result, project_dir() / "bench" / "results" / "train-methods.json")
    for m in methods: print(f"{m:12s} {best[m]:7.2f} s per epoch, {result['ratio_to_gaussian'][m]:5.1f} x Gaussian")
