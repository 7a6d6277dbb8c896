"""The training methods that followed the paper (issue 27): each trains, is killed and resumes to exactly the weights
of an uninterrupted run, trains from the command line, and is certified through a run's recipe. Digits-sized."""
import json
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from randsmooth.experiments import RunParams, default_checkpoint, run_certify
from randsmooth.train import METHODS, TrainConfig, checkpoint_path, read_checkpoint, train

from helpers import cli

# small settings that still exercise what depends on the epoch: warm-ups over 2 epochs, MACER's term from epoch 2
SMALL = dict(stability={}, consistency=dict(num_noise=2), smoothadv=dict(num_noise=2, num_steps=2, warmup=2),
             macer=dict(num_noise=2, lbd=1.0, deferred=True), smoothmix=dict(num_noise=2, num_steps=2, warmup=2))


def _config(method, epochs):
    return TrainConfig(dataset="digits", sigma=0.5, epochs=epochs, batch_size=128, lr=0.05, lr_step=1,
                       method=method, **SMALL[method])


def test_every_method_has_small_settings():
    assert set(SMALL) == set(METHODS) - {"gaussian"}


@pytest.mark.parametrize("method", sorted(SMALL))
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(method, tmp_path):
    "Three epochs in one go; two epochs in a process killed after its checkpoint, then resumed: the same weights."
    whole, _ = train(_config(method, 3), tmp_path / "whole.pt", progress=False)
    part = tmp_path / "part.pt"
    script = (f"import torch, os, signal\nfrom randsmooth.train import TrainConfig, train\n"
              f"import randsmooth.train as t\nsave = t.atomic_save\n"
              f"def kill_after(obj, path):\n    save(obj, path)\n"
              f"    if obj['epoch'] == 2: os.kill(os.getpid(), signal.SIGKILL)\n"
              f"t.atomic_save = kill_after\n"
              f"train(TrainConfig(**{asdict(_config(method, 3))!r}), {str(part)!r}, progress=False)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert read_checkpoint(part)["epoch"] == 2
    resumed, history = train(_config(method, 3), part, progress=False)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), (method, k)


def test_the_methods_train_from_the_command_line(tmp_path):
    "randsmooth train --method consistency --lbd 5: the hyperparameters reach the checkpoint and its name."
    code, _, _ = cli("train", "--dataset", "digits", "--sigma", "0.5", "--epochs", "1", "--method", "consistency",
               "--lbd", "5", "--checkpoint-dir", str(tmp_path), "--no-progress")
    assert code == 0
    (ckpt,) = tmp_path.glob("*.pt")
    assert ckpt.name.startswith("digits-small_cnn-consistency-noise0.5-ep1-seed0-")
    config = read_checkpoint(ckpt)["config"]
    assert (config["method"], config["lbd"], config["eta"], config["num_noise"]) == ("consistency", 5.0, 0.5, 2)
    assert json.loads(ckpt.with_suffix(".json").read_text())["params"]["lbd"] == 5.0
    code, _, err = cli("train", "--dataset", "digits", "--lbd", "5", "--checkpoint-dir", str(tmp_path))
    assert code != 0 and "not a hyperparameter of method 'gaussian'" in err


def test_a_run_certifies_the_model_its_recipe_names(tmp_path):
    "RunParams(recipe=...) finds (and, missing, trains) the recipe's checkpoint; the recipe is in the run's identity."
    p = dict(dataset="digits", sigma=0.5, n=50, skip=100, results_dir=str(tmp_path), checkpoint_dir=str(tmp_path),
             progress=False)
    recipe = "method=stability epochs=1"
    path = run_certify(**p, recipe=recipe)
    expected = checkpoint_path(TrainConfig(dataset="digits", sigma=0.5, method="stability", epochs=1), tmp_path)
    assert default_checkpoint(RunParams(**p, recipe=recipe)) == expected and expected.exists()
    assert path.parent.name == expected.stem
    assert json.loads(path.with_suffix(".json").read_text())["params"]["recipe"] == "epochs=1 method=stability"
    assert "recipe" not in RunParams(**p).identity()                     # runs of the paper's recipe: as before
