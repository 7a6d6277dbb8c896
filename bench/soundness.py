"""The guarantees at scale: CERTIFY's and PREDICT's failure rates over many runs on base classifiers whose class
probabilities are known exactly, against alpha and against the exact failure rate.

    python bench/soundness.py                 # 100,000 runs per case, about 3 minutes on 2 CPU cores
    python bench/soundness.py --runs 10000

Writes bench/results/soundness.json, which the book's soundness chapter reads. The same checks, on fewer runs, are
tests (tests/test_soundness.py).
"""
import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binom, norm

from randsmooth import ABSTAIN, certify, predict
from randsmooth.logs import git_commit, write_json
from randsmooth.stats import certify_failure_rate, lower_confidence_bound, predict_failure_rate
from randsmooth.theory import ProjectionClassifier, linear_classifier

CERTIFY_CASES = [(0.8, 0.05), (0.95, 0.05), (0.6, 0.1), (0.99, 0.01), (0.9, 0.001)]       # (p_A, alpha), n = 1000
PREDICT_CASES = [((0.4005, 0.3995, 0.2), 0.1, 200), ((0.4005, 0.3995, 0.2), 0.05, 400),    # (probs, alpha, n)
                 ((0.45, 0.40, 0.15), 0.01, 500)]


def interval(k, N, level=0.999):
    "Two-sided Clopper-Pearson interval for a rate, k failures in N runs: two one-sided bounds at (1 - level) / 2."
    a = (1 - level) / 2
    return float(lower_confidence_bound(k, N, a)), float(1 - lower_confidence_bound(N - k, N, a))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000, help="independent runs per case")
    ap.add_argument("--chunk", type=int, default=20_000, help="runs per call (memory)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "soundness.json"))
    a = ap.parse_args(argv)
    N, rows, t0 = a.runs, [], time.time()
    sigma, n = 0.5, 1000
    w = torch.tensor([0.6, 0.8])
    f = linear_classifier(w, 0.0)
    for case, (p_a, alpha) in enumerate(CERTIFY_CASES):
        d = sigma * norm.ppf(p_a)
        x = (-d * w.double()).float()[None]                        # class 0, at distance d from the boundary
        true_radius = float(f.project(x).abs())                     # the float32 input's exact distance
        p = float(f.probs(x, sigma)[0, 0])
        fails = wrong = 0
        for s in range(0, N, a.chunk):                              # each run has its own noise: its own index
            k = min(a.chunk, N - s)
            cert = certify(f, x.repeat(k, 1), sigma, n0=64, n=n, alpha=alpha, batch_size=65_536, seed=1000 + case,
                           indices=range(s, s + k))
            fails += int((cert.radius > true_radius).sum()); wrong += int((cert.prediction == 1).sum())
        rate = certify_failure_rate(p, n, alpha, n0=64)
        rows.append({"algorithm": "CERTIFY", "case": f"p_A = {p_a}", "alpha": alpha, "n": n, "runs": N,
                     "failures": fails + wrong, "rate": (fails + wrong) / N, "interval": interval(fails + wrong, N),
                     "exact_rate": rate, "bound": int(binom.isf(1e-9, N, alpha))})
        print(f"CERTIFY p_A {p_a} alpha {alpha}: {fails + wrong} of {N:,} radii exceed the true radius "
              f"(rate {(fails + wrong) / N:.5f}; exact {rate:.5f}; alpha {alpha})", flush=True)
    for case, (probs, alpha, m) in enumerate(PREDICT_CASES):
        cuts = np.cumsum(probs)[:-1]
        g = ProjectionClassifier([1.0, 0.0], sigma * norm.ppf(cuts), [0, 1, 2], 3)
        wrong = 0
        for s in range(0, N, a.chunk):
            k = min(a.chunk, N - s)
            pred = predict(g, torch.zeros(k, 2), sigma, n=m, alpha=alpha, batch_size=65_536, seed=2000 + case,
                           indices=range(s, s + k))
            wrong += int(((pred.prediction != 0) & (pred.prediction != ABSTAIN)).sum())
        rate = predict_failure_rate(probs, m, alpha)
        rows.append({"algorithm": "PREDICT", "case": f"p = {probs}", "alpha": alpha, "n": m, "runs": N,
                     "failures": wrong, "rate": wrong / N, "interval": interval(wrong, N), "exact_rate": rate,
                     "bound": int(binom.isf(1e-9, N, alpha))})
        print(f"PREDICT p {probs} alpha {alpha}: {wrong} of {N:,} answers wrong (rate {wrong / N:.5f}; exact {rate:.5f})",
              flush=True)
    result = {"benchmark": "soundness", "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": "python bench/soundness.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "torch": torch.__version__, "commit": git_commit(), "seconds": round(time.time() - t0, 1), "cases": rows}
    out = Path(a.out)
    write_json(result, out)
    print(f"wrote {out} ({result['seconds']} s)")
    return result


if __name__ == "__main__":
    main()
