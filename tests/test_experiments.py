"""The committed results and the models that made them: every MNIST result names a shipped checkpoint by its SHA-256,
and that checkpoint, certified again here, gives the committed log back."""
import json
import subprocess

import pytest

from helpers import ROOT
from randsmooth.experiments import RunParams, run_certify, selected_indices
from randsmooth.logs import read_json, read_log
from randsmooth.reproduce import log_path, read_grid, select
from randsmooth.train import checkpoint_sha256

OURS = select(read_grid(), source="ours", dataset="mnist")


@pytest.mark.parametrize("i", range(len(OURS)))
def test_every_committed_result_names_its_shipped_model(i):
    row = OURS.iloc[i]
    log = log_path(row)
    committed = subprocess.run(["git", "ls-files", "--error-unmatch", str(log.with_suffix(".json"))], cwd=ROOT,
                               capture_output=True).returncode == 0
    if not committed: pytest.skip(f"not run (or not committed) yet; the status page lists it: {log.name}")
    meta = read_json(log.with_suffix(".json"))
    classifier, _, denoiser = log.parent.name.partition("+")          # <classifier>[+<denoiser>]
    shipped = ROOT / "checkpoints" / f"{classifier}.pt"
    assert shipped.exists(), f"{shipped} is not shipped"
    assert meta["status"] == "complete" and meta["checkpoint_sha256"] == checkpoint_sha256(shipped)
    if denoiser:                                                       # its denoiser, shipped too
        shipped = ROOT / "checkpoints" / f"{denoiser}.pt"
        assert shipped.exists(), f"{shipped} is not shipped"
        assert meta["denoiser_sha256"] == checkpoint_sha256(shipped)
    assert len(read_log(log)) == len(selected_indices(1000, int(row["skip"]), int(row["max"])))


@pytest.mark.parametrize("sampler", ["gaussian", "sound"])
def test_the_shipped_model_gives_the_committed_certificates_back(tmp_path, sampler):
    "Five digits recertified with the shipped sigma = 0.25 model, as the committed run did them (float and sound noise)."
    row = select(OURS, kind="certify", sigma=0.25, precision="float32", method="certify", sampler=sampler).iloc[0]
    if not log_path(row).exists(): pytest.skip(f"not run yet: {log_path(row).name}")
    committed = read_log(log_path(row)).set_index("idx")
    again = read_log(run_certify(sigma=0.25, n=int(row["n"]), max=5, results_dir=tmp_path, progress=False,
                                 sampler=sampler,
                                 checkpoint=str(ROOT / "checkpoints" / (log_path(row).parent.name + ".pt"))))
    for _, r in again.iterrows():
        c = committed.loc[r["idx"]]
        assert r["predict"] == c["predict"]
        # the same noise through the same weights: equal counts on this project's machines; another CPU model may
        # round a convolution differently and move a draw that lies on a decision boundary
        assert abs(r["n_a"] - c["n_a"]) <= 10, (r["idx"], r["n_a"], c["n_a"])


def test_a_sound_run_has_its_own_log_and_says_so(tmp_path):
    "sampler='sound' is part of a run's identity: its own file name, and its parameters in the JSON."
    sound = run_certify(sigma=0.25, n=50, max=3, sampler="sound", results_dir=tmp_path, progress=False)
    assert sound.name.endswith("-sound.tsv") and read_json(sound.with_suffix(".json"))["params"]["sampler"] == "sound"
    plain = run_certify(sigma=0.25, n=50, max=3, results_dir=tmp_path, progress=False)
    assert plain != sound and "sampler" not in read_json(plain.with_suffix(".json"))["params"]   # as before


def test_a_sound_run_refuses_data_off_the_grid_before_it_writes(tmp_path):
    "scikit-learn's digits are k/16, not k/255: sound noise has no grid for them, and says so before any file."
    with pytest.raises(ValueError, match="1/255 grid"):
        run_certify(dataset="digits", sigma=0.25, n=10, max=2, sampler="sound", results_dir=tmp_path,
                    checkpoint_dir=tmp_path, progress=False)
    assert not list(tmp_path.rglob("*.tsv")) and not list(tmp_path.rglob("*.pt"))


def test_an_interrupted_default_checkpoint_is_not_used_as_the_model(tmp_path):
    "Training writes its checkpoint every epoch under the final name; an epoch-2 file is not the 90-epoch model."
    from randsmooth.experiments import default_checkpoint
    from randsmooth.train import TrainConfig, train
    p = RunParams(dataset="digits", sigma=0.5, checkpoint_dir=str(tmp_path), results_dir=str(tmp_path), n=100,
                  skip=50, progress=False, train_if_missing=False)
    train(TrainConfig(dataset="digits", sigma=0.5, epochs=2), default_checkpoint(p), progress=False)  # the same recipe, cut short
    with pytest.raises(ValueError, match="stopped at epoch 2 of 90: its training was interrupted"):
        run_certify(**{k: getattr(p, k) for k in RunParams.names()})
    assert not (tmp_path / "certify").exists()


def test_a_log_without_its_json_is_not_continued(tmp_path):
    from randsmooth.train import TrainConfig, train
    ckpt = tmp_path / "m.pt"
    train(TrainConfig(dataset="digits", sigma=0.5, epochs=1), ckpt, progress=False)
    kw = dict(dataset="digits", sigma=0.5, n=100, skip=50, checkpoint=str(ckpt), results_dir=str(tmp_path), progress=False)
    log = run_certify(**kw)
    log.with_suffix(".json").unlink()
    lines = log.read_text().split("\n")
    log.write_text("\n".join(lines[:3]) + "\n")                       # an interrupted run whose .json is gone
    with pytest.raises(ValueError, match="has results but no .json beside it"):
        run_certify(**kw)


def test_resuming_keeps_the_first_provenance_and_adds_a_session(tmp_path):
    from randsmooth.train import TrainConfig, train
    ckpt = tmp_path / "m.pt"
    train(TrainConfig(dataset="digits", sigma=0.5, epochs=1), ckpt, progress=False)
    kw = dict(dataset="digits", sigma=0.5, n=100, skip=50, checkpoint=str(ckpt), results_dir=str(tmp_path), progress=False)
    log = run_certify(**kw)
    first = json.loads(log.with_suffix(".json").read_text())
    log.write_text("\n".join(log.read_text().split("\n")[:3]) + "\n")
    run_certify(**kw)
    meta = json.loads(log.with_suffix(".json").read_text())
    assert meta["started"] == first["started"] and [s["inputs"] for s in meta["sessions"]] == [6, 4]
    assert meta["status"] == "complete" and len(read_log(log)) == 6
    run_certify(**kw)                                                   # nothing left: the record is not touched
    assert json.loads(log.with_suffix(".json").read_text()) == meta


def test_the_main_job_runs_at_the_papers_n_within_reach():
    "make run's parameters (the Makefile's RUN_PARAMS): the paper's n and alpha, the sequential method, radii that n"
    " can certify, and a shipped model, so that nothing it prints is n's limit and nothing is trained first."
    import re
    import shlex
    from scipy.stats import norm
    from randsmooth.experiments import RunParams, default_checkpoint
    line = next(l for l in (ROOT / "Makefile").read_text().splitlines() if l.startswith("RUN_PARAMS ?="))
    words = shlex.split(line.split("?=", 1)[1])
    assert words[::3] == ["-p"] * (len(words) // 3)
    p = RunParams(**dict(zip(words[1::3], words[2::3])))
    assert (p.dataset, p.n, p.alpha, p.method) == ("mnist", 100_000, 0.001, "sequential")
    assert max(p.radii) < p.sigma * norm.ppf(p.alpha ** (1 / p.n))          # every radius shown is within n's reach
    assert default_checkpoint(p).exists()                                   # the shipped model: no training first
    assert re.search(r"scripts/run_notebook.py \$\(RUN_NB\) \$\(RUN_OUT\) \$\(RUN_PARAMS\)", (ROOT / "Makefile").read_text())
