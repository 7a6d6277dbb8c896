"""The hostile probe of issue 25, rerun: each command that gave a wrong result, a misleading error or left files
behind now gives the right answer or a clear error, and leaves nothing behind. Digits-sized, seconds each."""
import errno
import json
from pathlib import Path

import pytest
import torch

from randsmooth.attack import attack_smoothed
from randsmooth.core import certify, predict
from randsmooth.experiments import RunParams, run_certify
from randsmooth.logs import ResultsFileError, read_log, write_json
from randsmooth.reproduce import read_grid, reproduce
from randsmooth.train import TrainConfig, train


@pytest.fixture(scope="module")
def model_ckpt(tmp_path_factory):
    "A base classifier for the digits, one epoch at sigma = 0.5: a real checkpoint in the package's format."
    ckpt = tmp_path_factory.mktemp("model") / "m.pt"
    train(TrainConfig(dataset="digits", sigma=0.5, epochs=1), ckpt, progress=False)
    return ckpt


def _run(tmp_path, ckpt, **kw):
    return run_certify(**{**dict(dataset="digits", sigma=0.5, n=100, skip=50, checkpoint=str(ckpt),
                                 results_dir=str(tmp_path / "results"), progress=False), **kw})


def _files(tmp_path):
    "The results files under tmp_path: not the hidden lock files, which every run keeps beside its log."
    return sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "results").rglob("*")
                  if p.is_file() and not p.name.endswith(".lock"))


# 1. A log holds one run's inputs, with the data set's labels

def test_a_line_outside_the_runs_selection_is_refused_then_repaired(tmp_path, model_ckpt):
    log = _run(tmp_path, model_ckpt)                                  # inputs 0, 50, ..., 250 of the 300
    first = log.read_text().splitlines()[1].split("\t")
    log.write_text(log.read_text() + "\t".join(["3"] + first[1:]) + "\n")   # sound arithmetic, but input 3
    with pytest.raises(ResultsFileError, match=r"line 8: index 3 is not in this run's selection \(skip = 50, max = -1, of the 300"):
        _run(tmp_path, model_ckpt)
    _run(tmp_path, model_ckpt, repair=True)
    assert read_log(log)["idx"].tolist() == [0, 50, 100, 150, 200, 250]          # "6 inputs", not 7
    assert "index 3 is not in this run's selection" in log.with_name(log.name + ".damaged").read_text()


def test_on_resume_the_labels_must_be_the_data_sets(tmp_path, model_ckpt):
    log = _run(tmp_path, model_ckpt)
    lines = log.read_text().splitlines()
    f = lines[2].split("\t")                                          # input 50's line
    wrong = (int(f[1]) + 1) % 10
    f[1], f[4] = str(wrong), str(int(int(f[2]) == wrong))               # another label, `correct` agreeing with it
    log.write_text("\n".join(lines[:2] + ["\t".join(f)] + lines[3:]) + "\n")
    with pytest.raises(ResultsFileError, match=r"line 3: input 50 is logged with label \d, but the digits test split"):
        _run(tmp_path, model_ckpt)


# 3. reproduce tells the truth

def test_reproduce_refuses_an_unknown_data_set_and_a_dry_run_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="no runs of ours for the data set 'mnistt'; its data sets: cifar10"):
        reproduce(dataset="mnistt", dry_run=True)
    out = tmp_path / "out"
    reproduce(dry_run=True, grid=read_grid().iloc[:0], results_dir=tmp_path, checkpoint_dir=tmp_path, out_dir=out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_reproduce_does_not_call_a_result_made_with_other_parameters_done(tmp_path):
    from randsmooth.attack import tightness_path
    from randsmooth.wong import wong_path
    wong, tight = wong_path("mnist", 0.5, results_dir=tmp_path), tightness_path("mnist", 0.25, tmp_path)
    for path, params in ((wong, dict(dataset="mnist", epsilon=0.5, skip=2, max=0, epochs=8, seed=0, hi=4.0,
                                     tol=1e-3, train_batch_size=100)),
                         (tight, dict(dataset="mnist", sigma=0.25, n0=100, n=200, alpha=0.01, max=2,
                                      multiples=[0.5, 1.0, 1.5, 2.0, 3.0], steps=20, samples=250, predict_n=1000,
                                      predict_alpha=0.01, seed=0))):
        path.parent.mkdir(parents=True, exist_ok=True); path.write_text("idx\n")
        write_json({"params": params, "status": "complete"}, path.with_suffix(".json"))
    actions = {p: (a, what) for a, what, p in reproduce(dry_run=True, grid=read_grid().iloc[:0], results_dir=tmp_path,
                                                        checkpoint_dir=tmp_path)}
    assert actions[wong] == ("differs", "wong (max = 0 (expected -1))")
    assert actions[tight] == ("differs", "tightness (max = 2 (expected 100), n = 200 (expected 10000))")
    from randsmooth.wong import run_wong
    with pytest.raises(ValueError, match=r"max must be -1 \(the whole split\) or an index >= 1; got 0"):
        run_wong("mnist", max=0, results_dir=tmp_path, checkpoint_dir=tmp_path)


def test_the_cli_says_what_differs_and_exits_non_zero(tmp_path, capsys):
    from randsmooth.cli import main
    from randsmooth.wong import wong_path
    wong = wong_path("mnist", 1.0, results_dir=tmp_path)
    wong.parent.mkdir(parents=True); wong.write_text("idx\n")
    write_json({"params": {"max": 0}, "status": "complete"}, wong.with_suffix(".json"))
    assert main(["reproduce", "--dry-run", "--dataset", "mnist", "--results-dir", str(tmp_path),
                 "--checkpoint-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "differs  wong (" in out and "left as they are" in err
    assert main(["reproduce", "--dry-run", "--dataset", "mnistt"]) == 2
    assert "no runs of ours for the data set 'mnistt'" in capsys.readouterr().err


# 4, 5. the attack and Wong et al.'s bound refuse what they cannot take

@pytest.mark.parametrize("kw,said", [
    (dict(step_size=float("nan")), "step_size must be a finite length > 0"),
    (dict(step_size=-0.4), "step_size must be a finite length > 0"),
    (dict(x=torch.full((2, 4), float("nan"))), "x contains NaN"),
    (dict(y=torch.tensor([0.0, 1.0])), "y must be one integer class per input"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(x=torch.full((2, 4), 200, dtype=torch.uint8)), "divide by 255")])
def test_attack_smoothed_refuses_bad_arguments(kw, said):
    model = torch.nn.Linear(4, 3)
    args = {**dict(x=torch.rand(2, 4), y=torch.tensor([0, 1]), sigma=0.25, epsilon=0.5, steps=2, samples=8), **kw}
    with pytest.raises(ValueError, match=said):
        attack_smoothed(model, **args)


def test_a_negative_step_would_have_descended():
    "The power of the check above: a step against the gradient lowers the loss the attack means to raise."
    import torch.nn.functional as F
    torch.manual_seed(0)
    model, x, y = torch.nn.Linear(4, 3), torch.rand(4, 4), torch.tensor([0, 1, 2, 0])
    loss = lambda z: float(F.cross_entropy(model(z), y).detach())
    up = attack_smoothed(model, x, y, 0.01, 0.5, steps=5, samples=16)
    assert loss(up) > loss(x)


def test_wong_refuses_nan_inputs_float_labels_and_takes_an_empty_batch():
    pytest.importorskip("convex_adversarial")
    from randsmooth.models import wong_small
    from randsmooth.wong import margin_lower_bound, wong_radius
    net = wong_small(10, 1, 8).eval()
    x, y = torch.rand(2, 1, 8, 8), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="NaN or infinite"):
        wong_radius(net, torch.full_like(x, float("nan")), y)
    with pytest.raises(ValueError, match="y must hold integer classes; got torch.float32"):
        margin_lower_bound(net, x, y.float(), 0.1)
    assert margin_lower_bound(net, x[:0], y[:0], 0.1).shape == (0,)


# 6. integer images

@pytest.mark.parametrize("call", [lambda m, x: certify(m, x, 0.25, n0=10, n=10),
                                  lambda m, x: predict(m, x, 0.25, n=10)])
def test_integer_images_are_refused_not_cast(call):
    "certify(model, uint8) used to feed the model 199..201 for a pixel of 200: now it says to divide by 255."
    with pytest.raises(ValueError, match=r"x has dtype torch.uint8: .* divide by 255: x.float\(\) / 255"):
        call(torch.nn.Linear(4, 3), torch.full((2, 4), 200, dtype=torch.uint8))


# 7, 8. a failed run leaves nothing behind

def test_a_run_that_fails_leaves_no_files(tmp_path, model_ckpt):
    with pytest.raises(ValueError, match="out of reach"):
        _run(tmp_path, model_ckpt, method="sequential", radii=[1e6])
    with pytest.raises(ValueError, match=r"noise='sound' serves sigma in \[0.001, 4\]; got 1e-06"):
        _run(tmp_path, model_ckpt, sampler="sound", sigma=1e-6, noise=0.5)
    nan = tmp_path / "nan.pt"
    ckpt = torch.load(model_ckpt, weights_only=True)
    for w in ckpt["model"].values(): w.fill_(float("nan"))
    torch.save(ckpt, nan)
    with pytest.raises(ValueError, match="NaN"):
        _run(tmp_path, nan)
    from randsmooth.wong import run_wong
    with pytest.raises(ValueError, match="need 0 < tol < hi"):
        run_wong("mnist", hi=-1, results_dir=tmp_path / "results", checkpoint_dir=tmp_path)
    assert _files(tmp_path) == []


def test_a_resumed_run_that_fails_gives_back_the_record_it_found(tmp_path, model_ckpt, monkeypatch):
    import randsmooth.experiments as experiments
    log = _run(tmp_path, model_ckpt)
    record = json.loads(log.with_suffix(".json").read_text())
    log.write_text("\n".join(log.read_text().splitlines()[:3]) + "\n")      # two inputs done, four to do
    def ctrl_c(*a, **k): raise KeyboardInterrupt
    monkeypatch.setattr(experiments, "certify", ctrl_c)                      # Ctrl-C before the next line
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, model_ckpt)
    assert json.loads(log.with_suffix(".json").read_text()) == record and len(read_log(log)) == 2


def test_sound_noise_sigma_limits_come_before_its_table():
    from randsmooth.sound import SIGMA_RANGE, sound_noise
    for s in (1e-6, 30, 1000):
        with pytest.raises(ValueError, match=r"noise='sound' serves sigma in \[0.001, 4\]"):
            sound_noise(s)
    assert SIGMA_RANGE == (0.001, 4.0) and sound_noise(1.0).half_width > 0


# 9. one-line errors

def test_a_learning_rate_float32_cannot_hold_is_refused(capsys):
    from randsmooth.cli import main
    assert main(["train", "--dataset", "digits", "--lr", "1e39", "--epochs", "1"]) == 2
    assert "lr must be a number > 0 that float32 holds" in capsys.readouterr().err


def test_an_empty_cifar_test_batch_is_named(tmp_path):
    import pickle
    import numpy as np
    from helpers import write_fake_cifar10
    from randsmooth.data import get_dataset
    root = write_fake_cifar10(tmp_path)
    with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"labels": [], "data": np.zeros((0, 3072), dtype=np.uint8)}, f)
    with pytest.raises(ValueError, match="cifar-10-batches-py holds no images in test_batch"):
        get_dataset("cifar10", "test", root)


def test_a_full_disk_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    def full(self, *a, **k):
        open(self, "w").close()                                        # the 0-byte file a full disk leaves
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Path, "write_text", full)
    target = tmp_path / "r.json"
    with pytest.raises(OSError) as e:
        write_json({"a": 1}, target)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_prints_one_line_saying_nothing_is_lost(monkeypatch, capsys):
    import randsmooth.cli as cli
    def interrupted(**kw): raise KeyboardInterrupt
    monkeypatch.setattr(cli, "run_certify", interrupted)
    assert cli.main(["certify", "--dataset", "digits"]) == 130
    err = capsys.readouterr().err
    assert "interrupted. Nothing finished is lost" in err and "Traceback" not in err and err.count("\n") == 2


def test_off_grid_inputs_do_not_point_cli_users_at_a_python_flag():
    from randsmooth.sound import on_grid
    with pytest.raises(ValueError, match="In Python, pass quantize=True .* or certify with --sampler gaussian"):
        on_grid(torch.tensor([0.5, 0.3]))


# Denoised smoothing (issue 28): a denoiser file is data, never code; a wrong one is named, not used
class _RunsCode:
    "Pickled, it asks the loader to call os.system."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


def test_a_denoiser_crafted_to_run_code_is_refused_without_running_it(tmp_path, model_ckpt, capsys):
    from randsmooth.cli import main
    from randsmooth.denoise import DENOISER_FORMAT, load_denoiser
    marker, crafted = tmp_path / "it-ran", tmp_path / "d.pt"
    torch.save({"format": DENOISER_FORMAT, "model": _RunsCode(marker)}, crafted)
    with pytest.raises(ValueError, match="cannot read .* as a denoiser"):
        load_denoiser(crafted)
    assert main(["certify", "--dataset", "digits", "--noise", "0.5", "--sigma", "0.5", "--checkpoint", str(model_ckpt),
                 "--denoiser", str(crafted), "--results-dir", str(tmp_path / "results"), "--no-progress"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert not marker.exists() and _files(tmp_path) == []


def test_a_denoiser_recipe_with_a_stray_field_or_a_missing_file_is_named(tmp_path, model_ckpt):
    with pytest.raises(ValueError, match="'lbd' is not a field a denoiser recipe sets"):
        _run(tmp_path, model_ckpt, denoiser="objective=mse lbd=2")
    with pytest.raises(FileNotFoundError, match="no denoiser at"):
        _run(tmp_path, model_ckpt, denoiser=str(tmp_path / "nowhere.pt"))
    assert not (tmp_path / "results").exists() or _files(tmp_path) == []
