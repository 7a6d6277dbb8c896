"""Sound noise against float noise on the MNIST CNN: what it costs in time, and what it changes in the certificates.

    python bench/sound.py                  # both stages
    python bench/sound.py --stage timed    # only the wall-time ratio (a few minutes on two cores)

timed: on the first --timed test digits, for each of the four shipped models (sigma = 0.12, 0.25, 0.5, 1), CERTIFY
  with float noise and with sound noise (n0 = 100, n = 10,000, alpha = 0.001), chunk by chunk in one process, the
  order of the two alternating from chunk to chunk, so that the machine's load falls on both alike; and the noise
  alone (the noisy inputs of the same draws, no model), to show what the sampler itself costs. Then the same on
  4 random 8-bit CIFAR-10 images with ResNet-110 (random weights, n = 1,000), whose forward pass outweighs the noise.
mnist: the grid's runs at n = 10,000 on all 1,000 test digits, float noise (sampler 'gaussian') against sound noise
  (sampler 'sound'), read from their logs (made by `randsmooth reproduce`; a missing one is reported, not run):
  certified accuracy at each radius, abstentions, and how often the two certify the same class.
Results: bench/results/sound.json (read by nbs/benchmarks.ipynb).
"""
import argparse
import datetime
import sys
import time

import numpy as np
import torch

from randsmooth.core import ESTIMATE, certify, noisy_batches
from randsmooth.data import get_dataset
from randsmooth.experiments import RunParams, get_model
from randsmooth.logs import certified_accuracy, device_name, git_commit, project_dir, read_json, read_log, write_json
from randsmooth.models import build_model
from randsmooth.reproduce import is_complete, log_path, read_grid, select
from randsmooth.sound import SoundNoise

SIGMAS, N0, N, ALPHA = (0.12, 0.25, 0.5, 1.0), 100, 10_000, 0.001
RADII = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0]


def time_both(model, x, sigma, n, batch, chunk, alone_draws):
    "Seconds of CERTIFY with each noise on x (chunk by chunk, the order alternating), and of each noise alone."
    t = {"gaussian": 0.0, "sound": 0.0}
    for k, c in enumerate(range(0, len(x), chunk)):
        ids = list(range(c, min(c + chunk, len(x))))
        for noise in (("gaussian", "sound") if k % 2 == 0 else ("sound", "gaussian")):
            t0 = time.perf_counter(); certify(model, x[ids], sigma, N0, n, ALPHA, batch, indices=ids, noise=noise)
            t[noise] += time.perf_counter() - t0
    alone = {}
    for noise, sampler in (("gaussian", None), ("sound", SoundNoise(sigma))):
        t0 = time.perf_counter()
        for _ in noisy_batches(x, alone_draws, sigma, batch, 0, ESTIMATE, list(range(len(x))), sampler): pass
        alone[noise] = time.perf_counter() - t0
    return {"sigma": sigma, "inputs": len(x), "n0": N0, "n": n, "float_seconds": t["gaussian"],
            "sound_seconds": t["sound"], "ratio": t["sound"] / t["gaussian"],
            "noise_float_seconds": alone["gaussian"], "noise_sound_seconds": alone["sound"],
            "noise_ratio": alone["sound"] / alone["gaussian"]}


def timed(digits, chunk=10):
    "Wall time of CERTIFY with float and with sound noise on the same digits, and of the noise alone."
    data = get_dataset("mnist", "test")
    x = torch.stack([data[i][0] for i in range(digits)])
    rows = []
    for s in SIGMAS:
        model = get_model(RunParams(dataset="mnist", sigma=s, train_if_missing=False))[0]
        rows.append({"model": "MNIST small CNN (shipped)", **time_both(model, x, s, N, 1000, chunk, N)})
        print(f"sigma = {s:g}: sound / float = {rows[-1]['ratio']:.3f} (the noise alone: "
              f"{rows[-1]['noise_ratio']:.2f})", flush=True)
    return rows + timed_resnet()


def timed_resnet(inputs=4, n=1_000, sigma=0.25):
    "The same on CIFAR-10's ResNet-110 (random weights: timing only), where the forward pass outweighs the noise."
    torch.manual_seed(0)
    model = build_model("cifar_resnet110", "cifar10").eval()
    x = torch.randint(0, 256, (inputs, 3, 32, 32)) / 255                  # grid images
    row = {"model": "CIFAR-10 ResNet-110 (random weights)", **time_both(model, x, sigma, n, 100, 1, N0 + n)}
    print(f"ResNet-110: sound / float = {row['ratio']:.3f}", flush=True)
    return [row]


def mnist():
    "Certified accuracy of the four sigma at n = 10,000 with each noise, from the grid's logs."
    grid = select(read_grid(), source="ours", dataset="mnist", arch="small_cnn", kind="certify", method="certify",
                  n=N, precision="float32")
    rows = []
    for s in SIGMAS:
        pair = {}
        for sampler in ("gaussian", "sound"):
            row = select(grid, sigma=s, noise=s, sampler=sampler)
            if len(row) != 1 or not is_complete(row.iloc[0]):
                print(f"missing: sigma = {s:g}, sampler {sampler} (run `randsmooth reproduce`)"); break
            pair[sampler] = log_path(row.iloc[0])
        if len(pair) < 2: continue
        df = {k: read_log(p).sort_values("idx").reset_index(drop=True) for k, p in pair.items()}
        acc = {k: certified_accuracy(d, RADII).tolist() for k, d in df.items()}
        same = (df["gaussian"]["predict"].values == df["sound"]["predict"].values).mean()
        rows.append({"sigma": s, "inputs": len(df["sound"]), "radii": RADII,
                     "accuracy_float": acc["gaussian"], "accuracy_sound": acc["sound"],
                     "max_difference_points": float(100 * np.max(np.abs(np.subtract(acc["gaussian"], acc["sound"])))),
                     "abstain_float": float((df["gaussian"]["predict"] == -1).mean()),
                     "abstain_sound": float((df["sound"]["predict"] == -1).mean()),
                     "same_prediction": float(same),
                     "mean_radius_difference": float((df["sound"]["radius"] - df["gaussian"]["radius"]).mean()),
                     "logs": {k: str(p.relative_to(project_dir())) for k, p in pair.items()},
                     "wall_seconds": {k: read_json(p.with_suffix(".json")).get("wall_seconds")
                                      for k, p in pair.items()}})
    return rows


def main(argv=None):
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--stage", choices=["all", "timed", "mnist"], default="all")
    a.add_argument("--timed", type=int, default=50, help="digits for the wall-time ratio")
    args = a.parse_args(argv)
    path = project_dir() / "bench" / "results" / "sound.json"
    old = read_json(path) if path.exists() else {}
    result = {"benchmark": "sound", **{k: old.get(k) for k in ("timed", "mnist")}}
    for name, run in {"timed": lambda: timed(args.timed), "mnist": mnist}.items():
        if args.stage not in ("all", name): continue
        t0 = time.perf_counter()
        rows = run()
        result[name] = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv),
                        "device_name": device_name("cpu"), "git_commit": git_commit(),
                        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                        "seconds": round(time.perf_counter() - t0, 1), "rows": rows}
    write_json(result, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
