"""The paper's numbers, reproduced from its original logs (data/original-logs) to the logs' precision."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from randsmooth.analyze import (accuracy_table, average_certified_radius, certified_accuracy_lower_bound, envelope,
                                n_a_of, project_alpha, project_n, rebound, to_latex, to_markdown,
                                wrong_certificates_bound)
from randsmooth.logs import certified_accuracy, read_log
from randsmooth.reproduce import log_path, read_grid, select
from randsmooth.stats import lower_confidence_bound, max_certifiable_radius

GRID = read_grid()
PAPER = select(GRID, source="paper")


def matched(dataset):
    rows = select(PAPER, dataset=dataset, kind="certify", split="test")
    return {r["sigma"]: read_log(log_path(r)) for _, r in rows[rows["noise"] == rows["sigma"]].iterrows()}


def test_every_paper_log_in_the_grid_is_there():
    assert len(PAPER) == 17
    for _, r in PAPER.iterrows():
        assert log_path(r).exists(), r["log"]


def test_table1_imagenet():
    "Table 1: r=0.5 49% (sigma 0.25, std 67%); r=1.0 37% (0.50, 57%); r=2.0 19% and r=3.0 12% (1.00, 44%)."
    t = envelope(matched("imagenet"), [0.5, 1.0, 2.0, 3.0])
    assert t["best sigma"].tolist() == [0.25, 0.5, 1.0, 1.0]
    assert t["certified accuracy"].round(3).tolist() == [0.494, 0.372, 0.194, 0.122]
    assert t["standard accuracy"].round(3).tolist() == [0.667, 0.572, 0.436, 0.436]
    assert (100 * t["certified accuracy"]).round().tolist() == [49, 37, 19, 12]
    assert (100 * t["standard accuracy"]).round().tolist() == [67, 57, 44, 44]


def test_cifar10_table():
    "r=0.25 60%, 0.5 43%, 0.75 32%, 1.0 23%."
    t = envelope(matched("cifar10"), [0.25, 0.5, 0.75, 1.0])
    assert t["certified accuracy"].round(3).tolist() == [0.600, 0.428, 0.320, 0.234]
    assert (100 * t["certified accuracy"]).round().tolist() == [60, 43, 32, 23]
    assert t["best sigma"].tolist() == [0.25, 0.25, 0.5, 0.5]


def test_predict_abstention_on_imagenet():
    "About 9%, 3%, 1% at N = 100, 1k, 10k (the paper's text says 12%, 4%, 1%)."
    rows = select(PAPER, kind="predict").sort_values("n")
    rates = [float((read_log(log_path(r))["predict"] == -1).mean()) for _, r in rows.iterrows()]
    assert np.round(rates, 3).tolist() == [0.092, 0.032, 0.010, 0.004]


def test_appendix_e_table_shape_and_values():
    rows = select(PAPER, dataset="cifar10", kind="certify")
    t = accuracy_table({(r["noise"], r["sigma"]): log_path(r) for _, r in rows.iterrows()}, [0.0, 0.5, 1.0])
    assert t.shape == (7, 4)
    assert round(t.loc[(0.12, 0.5), 0.0], 3) == 0.118 and round(t.loc[(0.5, 0.5), "abstain"], 3) == 0.166


def test_what_the_logs_show():
    imagenet = matched("imagenet")
    assert len(imagenet[0.25]) == 427
    for _, r in select(PAPER, kind="certify").iterrows():
        top = read_log(log_path(r))["radius"].max()
        ceiling = {a: float(f"{max_certifiable_radius(100_000, a, r['sigma']):.3}") for a in (0.001, 0.01)}
        assert top <= ceiling[0.01]
        assert (top > ceiling[0.001]) == (r["alpha"] == 0.01), r["log"]


def test_high_probability_lower_bound():
    df = matched("imagenet")[0.5]
    assert wrong_certificates_bound(500, 0.001, 0.001) == 4
    approx = certified_accuracy(df, [0.0, 1.0])
    lower = certified_accuracy_lower_bound(df, [0.0, 1.0], alpha=0.001, rho=0.001)
    assert np.allclose(approx - lower, 4 / 500)


def test_average_certified_radius_is_the_area_under_the_curve():
    df = matched("cifar10")[0.25]
    r = np.linspace(0, 1.2, 120_001)
    assert average_certified_radius(df) == pytest.approx(np.trapezoid(certified_accuracy(df, r).values, r), abs=1e-4)


def test_recovered_counts_reproduce_the_logged_radius():
    df, sigma = matched("imagenet")[0.25], 0.25
    k = n_a_of(df, sigma, 100_000, 0.01)
    ok = df["predict"] >= 0
    radius = sigma * np.maximum(0.0, norm.ppf(lower_confidence_bound(k, 100_000, 0.01)))
    assert np.allclose(radius[ok], df["radius"][ok], atol=0.006)            # three significant digits


def test_figure8_projections_are_monotone():
    df = matched("imagenet")[0.25]
    radii = [0.0, 0.25, 0.5, 0.75, 0.9]
    bounds = {b: certified_accuracy(rebound(df, 0.25, b), radii) for b in ("cohen", "li", "lecuyer")}
    assert (bounds["lecuyer"] <= bounds["li"]).all() and (bounds["li"] <= bounds["cohen"]).all()
    by_n = [certified_accuracy(project_n(df, 0.25, 100_000, 0.01, m), radii) for m in (10**3, 10**5, 10**7)]
    assert (by_n[0] <= by_n[1]).all() and (by_n[1] <= by_n[2]).all()
    by_alpha = [certified_accuracy(project_alpha(df, 0.25, 100_000, 0.01, a), radii) for a in (1e-6, 1e-3, 1e-2)]
    assert (by_alpha[0] <= by_alpha[1]).all() and (by_alpha[1] <= by_alpha[2]).all()


def test_tables_as_markdown_and_latex():
    t = envelope(matched("cifar10"), [0.25, 0.5])
    md, tex = to_markdown(t), to_latex(t)
    assert md.splitlines()[0].startswith("| radius |") and "| 0.25 | 0.25 | 60.0 | 74.8 |" in md
    assert tex.startswith(r"\begin{tabular}") and r"0.25 & 0.25 & 60.0 & 74.8 \\" in tex
