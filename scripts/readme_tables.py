"""README.md's result tables, written from the results files.

    python scripts/readme_tables.py           # rewrite the tables in README.md (`make readme`)
    python scripts/readme_tables.py --check   # exit 1, printing a diff, if README.md differs from what it would write

Each table stands between `<!-- table: NAME -->` and `<!-- /table: NAME -->` (a blank line inside each), and TABLES
maps NAME to the function that writes it from results/, bench/results/ and data/original-logs/, read and counted by
the package's own `read_log` and `certified_accuracy`. tests/test_readme.py runs a check.
"""
import argparse
import difflib
import json
import re
import sys
from pathlib import Path

import pandas as pd
from scipy.stats import binomtest

from randsmooth.logs import certified_accuracy, read_log

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SIGMAS = [0.12, 0.25, 0.5, 1.0]
MARKED = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n\n).*?(\n\n<!-- /table: (?P=name) -->)", re.S)


def certify_log(arch, noise, sigma, n=10_000, skip=1):
    "Our certify log of the model `arch` trained at `noise`, smoothed at `sigma` (the one file that matches)."
    name = f"sigma{sigma:g}-n0_100-n{n}-alpha0.001-skip{skip}-max-1-seed0-test.tsv"
    [path] = (ROOT / "results" / "certify").glob(f"mnist-{arch}-noise{noise:g}-ep90-seed0-*/{name}")
    return read_log(path)


def paper_log(noise, sigma):
    "The paper's CIFAR-10 ResNet-110 log, trained at `noise`, smoothed at `sigma`."
    path = f"data/original-logs/certify/cifar10/resnet110/noise_{noise:.2f}/test/sigma_{sigma:.2f}"
    return read_log(ROOT / path)


def accuracy(df, radii):
    "Approximate certified accuracy at each radius, as a list."
    return certified_accuracy(df, radii).tolist()


def pct(fractions): return [f"{100 * v:.1f}" for v in fractions]


def bench(name): return json.loads((ROOT / "bench" / "results" / f"{name}.json").read_text())


def table(header, rows):
    "A Markdown table; an empty cell is written `| |`."
    line = lambda cells: "|" + "|".join(f" {c} " if c != "" else " " for c in cells) + "|"
    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def mnist():
    radii = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
    return table(["sigma", "r = 0", "0.25", "0.5", "0.75", "1.0", "1.5", "2.0"],
                 [[f"{s:.2f}", *pct(accuracy(certify_log("small_cnn", s, s), radii))] for s in SIGMAS])


def mnist_n100000():
    multiples = [3.0, 3.25, 3.5, 3.75]                            # of sigma
    radii = lambda s: [m * s for m in multiples]
    return table(["sigma", "n", "r = 3.0 sigma", "3.25 sigma", "3.5 sigma", "3.75 sigma"],
                 [[f"{s:.2f}", f"{n:,}", *pct(accuracy(certify_log("small_cnn", s, s, n), radii(s)))]
                  for s in SIGMAS for n in (10_000, 100_000)])


def baselines():
    df = pd.read_csv(ROOT / "results" / "baselines" / "mnist-noisy-accuracy.tsv", sep="\t")
    at = lambda noise: df[df["training_noise"] == noise].set_index("sigma")["accuracy"]
    rows = {"0 (undefended)": 0.0, "1.0": 1.0}
    return table(["trained at noise", "test noise 0", "0.25", "0.5", "1.0"],
                 [[name, *pct(at(noise)[[0.0, 0.25, 0.5, 1.0]])] for name, noise in rows.items()])


def mismatch():
    radii = [0.0, 1.0, 1.5]
    return table(["trained at", "CIFAR-10 (paper's logs) r = 0", "r = 1.0", "r = 1.5",
                  "MNIST (ours) r = 0", "r = 1.0", "r = 1.5"],
                 [[str(t) + (" (matched)" if t == 0.5 else ""), *pct(accuracy(paper_log(t, 0.5), radii)),
                   *pct(accuracy(certify_log("small_cnn", t, 0.5), radii))] for t in SIGMAS])


def wong():
    radii = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0]
    best = lambda logs: pct(max(column) for column in zip(*(accuracy(df, radii) for df in logs)))
    even = lambda df: df[df["idx"] % 2 == 0]                     # the 500 digits of the Wong runs
    rows = [[f"Wong et al., epsilon = {e:g} (deterministic)",
             *pct(accuracy(read_log(ROOT / f"results/wong/mnist-wong_small-eps{e:g}-ep8-seed0.tsv"), radii))]
            for e in (0.5, 1.0)]
    rows.append(["smoothing, the same network", *best(certify_log("wong_small", s, s, skip=2) for s in SIGMAS[1:])])
    rows.append(["smoothing, our small CNN", *best(even(certify_log("small_cnn", s, s)) for s in SIGMAS[1:])])
    return table(["", "r = 0", "0.25", "0.5", "0.75", "1.0", "1.5", "2.0"], rows)


def attack():
    paper = {1.5: "17", 2.0: "53"}                                # the paper's ImageNet numbers (Section 4)
    runs = pd.read_csv(ROOT / "results" / "attack" / "mnist-sigma0.25-tightness.tsv", sep="\t")
    fooled = []
    for _, t in runs.groupby("multiple"):
        k, m = int((t["outcome"] == "fooled").sum()), len(t)
        ci = binomtest(k, m).proportion_ci(0.95, method="exact")
        low = f"{100 * ci.low:.1f}" if ci.low > 0 else "0"
        fooled.append(f"{100 * k / m:.1f} [{low}, {100 * ci.high:.1f}]")
    multiples = sorted(runs["multiple"].unique())
    return table(["attack radius", *(f"{m:g} R" for m in multiples)],
                 [["fooled (ours, MNIST)", *fooled], ["paper (ImageNet)", *(paper.get(m, "") for m in multiples)]])


def sequential():
    results = bench("sequential")
    wall = {(r["sigma"], r["setting"]): r["wall_ratio"] for r in results["timed"]["rows"]}
    return table(["sigma", "radii", "forward passes per digit (mean)", "fewer than CERTIFY", "target",
                  "largest accuracy gap (points)", "wall-time ratio"],
                 [[f"{r['sigma']:g}", r["setting"], f"{round(r['mean_samples']):,}", f"{r['ratio']:.1f}x",
                   f"{r['target']}x", f"{r['max_difference_points']:.2f}", f"{wall[r['sigma'], r['setting']]:.1f}x"]
                  for r in results["mnist"]["rows"]])


def sound_accuracy():
    rows = bench("sound")["mnist"]["rows"]
    shown = [i for i, r in enumerate(rows[0]["radii"]) if r <= 2]
    return table(["sigma", "noise", *(f"r = {rows[0]['radii'][i]:g}" for i in shown)],
                 [[f"{r['sigma']:g}", noise, *pct(r[f"accuracy_{noise}"][i] for i in shown)]
                  for r in rows for noise in ("float", "sound")])


def sound_cost():
    return table(["base classifier", "sigma", "inputs", "float noise, s/input", "sound noise, s/input",
                  "sound / float", "the noise alone"],
                 [[r["model"], f"{r['sigma']:g}", str(r["inputs"]), f"{r['float_seconds'] / r['inputs']:.3f}",
                   f"{r['sound_seconds'] / r['inputs']:.3f}", f"{r['ratio']:.2f}x", f"{r['noise_ratio']:.1f}x"]
                  for r in bench("sound")["timed"]["rows"]])


def train_methods():
    b, names = bench("train-methods"), {"gaussian": "Gaussian augmentation", "stability": "Stability",
                                        "consistency": "Consistency", "macer": "MACER", "smoothmix": "SmoothMix",
                                        "smoothadv": "SmoothAdv"}
    return table(["method", "seconds per epoch", "times Gaussian augmentation"],
                 [[names[m], f"{b['seconds_per_epoch'][m]:.2f}", f"{b['ratio_to_gaussian'][m]:.1f}"]
                  for m in names])


def best_of_sigma(logs, key, sigmas, radii, label):
    "[label, *best-of-sigma accuracies] once all of key's sigmas are in `logs`, else [how many so far, blanks]."
    done = [s for s in sigmas if (key, s) in logs]
    if len(done) < len(sigmas): return [f"ours: {len(done)} of {len(sigmas)} sigma so far", *[""] * len(radii)]
    return [label, *pct(map(max, zip(*(accuracy(logs[(key, s)], radii) for s in sigmas))))]


def methods_best_sigma():
    from randsmooth.analyze import published_logs
    from randsmooth.experiments import run_recipe
    from randsmooth.reproduce import is_complete, log_path, read_grid, run_params, select
    radii, sigmas, names = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5], [0.25, 0.5, 1.0], {
        "gaussian": "Gaussian augmentation", "stability": "Stability", "consistency": "Consistency",
        "macer": "MACER", "smoothmix": "SmoothMix", "smoothadv": "SmoothAdv"}
    ours = {}
    for _, r in select(read_grid(), source="ours", dataset="mnist", arch="lenet", kind="certify",
                       method="certify").iterrows():
        if is_complete(r): ours[(run_recipe(run_params(r)).method, r["sigma"])] = read_log(log_path(r))
    pub = published_logs()
    published = lambda m, s: [sum(x) / len(x) for x in zip(*(accuracy(read_log(p), radii) for p in
                              pub[(pub["method"] == m) & (pub["sigma"] == s)]["path"]))]
    rows = []
    for m, name in names.items():
        rows.append([name, *best_of_sigma(ours, m, sigmas, radii, "ours")])
        rows.append(["", "published", *pct(map(max, zip(*(published(m, s) for s in sigmas))))])
    return table(["method", "", *(f"r = {q:g}" for q in radii)], rows)


def denoised():
    from randsmooth.reproduce import is_complete, log_path, read_grid, select
    from randsmooth.analyze import published_denoised
    radii, sigmas = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5], [0.25, 0.5, 1.0]
    names = {"": "f alone (trained without noise)", "objective=mse": "f + MSE denoiser",
             "objective=stab": "f + stability denoiser"}
    grid = select(read_grid(), source="ours", dataset="mnist", arch="small_cnn", kind="certify", method="certify",
                  sampler="gaussian", precision="float32", n=10_000)
    logs = {}
    for _, r in grid.iterrows():
        key = (r["denoiser"] if isinstance(r["denoiser"], str) else "") if r["noise"] == 0 else \
            "noise" if r["noise"] == r["sigma"] and not isinstance(r["recipe"], str) else None
        if key is not None and r["sigma"] in sigmas and is_complete(r): logs[(key, r["sigma"])] = read_log(log_path(r))
    rows = []
    for key, name in {**names, "noise": "trained with noise (the paper)"}.items():
        rows.append([name, *best_of_sigma(logs, key, sigmas, radii, "ours, MNIST")])
    theirs = {"no denoiser": "cifar10_certified_outer_envelop_no_denoisers",
              "stability denoiser, full access": "fullAccess_cifar10_certified_outer_envelop",
              "trained with noise": "cifar10_certified_outer_envelop_whitebox"}
    for name, file in theirs.items():
        at = published_denoised(file)["certified"]
        rows.append([f"ResNet-110, {name}", "Salman et al., CIFAR-10", *(f"{100 * at[q]:.0f}" for q in radii)])
    return table(["classifier", "", *(f"r = {q:g}" for q in radii)], rows)


TABLES = {f.__name__: f for f in (mnist, mnist_n100000, baselines, mismatch, wong, attack, sequential,
                                   sound_accuracy, sound_cost, train_methods, methods_best_sigma, denoised)}


def generate():
    "Every table, by name, as this script writes it."
    return {name: make() for name, make in TABLES.items()}


def render(text, tables=None):
    "The README's text with every marked table replaced by its generated version."
    tables, seen = tables or generate(), []
    def replace(m):
        if m["name"] not in tables: raise ValueError(f"README.md marks a table not in TABLES: {m['name']}")
        seen.append(m["name"])
        return m[1] + tables[m["name"]] + m[3]
    out = MARKED.sub(replace, text)
    if sorted(seen) != sorted(tables): raise ValueError(f"README.md must mark each of {sorted(tables)} once: {seen}")
    return out


def diff(text, tables=None):
    "What `render` would change in the README's text, as a unified diff ('' when nothing)."
    return "".join(difflib.unified_diff(text.splitlines(True), render(text, tables).splitlines(True),
                                        "README.md", "README.md (from the results files)"))


def main(argv=None):
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--check", action="store_true", help="exit 1 with a diff if README.md is not up to date")
    text = README.read_text()
    if args.parse_args(argv).check:
        if changes := diff(text):
            sys.stdout.write(changes)
            return 1
        print("README.md's tables match the results files")
    elif (new := render(text)) != text:
        README.write_text(new)
        print("README.md: tables rewritten from the results files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
