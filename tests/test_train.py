"""Gaussian-augmentation training and checkpoints: resume, metadata, safe loading, validation."""
import os
from dataclasses import asdict

import pytest
import torch

from randsmooth.train import FORMAT, TrainConfig, load_checkpoint, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    cfg = TrainConfig(dataset="digits", sigma=0.25, epochs=4, batch_size=64, lr=0.05, lr_step=3)
    model, hist = train(cfg, d / "full.pt", progress=False)
    return cfg, d, model, hist


def test_tiny_training_run_lowers_the_loss(trained):
    cfg, d, model, hist = trained
    assert len(hist) == 4 and hist[-1]["train_loss"] < 0.7 * hist[0]["train_loss"]
    assert hist[-1]["test_acc_noisy"] > 0.5                                 # far above chance (0.1)
    log = (d / "full.log.tsv").read_text().splitlines()
    assert log[0].split("\t")[:3] == ["epoch", "lr", "train_loss"] and len(log) == 5


def test_checkpoint_carries_metadata_and_loads_safely(trained):
    cfg, d, model, _ = trained
    ckpt = torch.load(d / "full.pt", weights_only=True)
    assert ckpt["format"] == FORMAT and ckpt["epoch"] == 4
    assert ckpt["config"]["arch"] == "small_cnn" and ckpt["config"]["sigma"] == 0.25 and "optimizer" in ckpt
    loaded, _ = load_checkpoint(d / "full.pt", arch="small_cnn", dataset="digits", sigma=0.25)
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(loaded(x), model.eval()(x)) and not loaded.training


@pytest.mark.parametrize("field,value,msg", [("sigma", 0.5, "sigma=0.25 (asked for 0.5)"),
                                             ("arch", "cifar_resnet110", "arch='small_cnn'"),
                                             ("dataset", "mnist", "dataset='digits'")])
def test_mismatched_checkpoint_is_refused(trained, field, value, msg):
    _, d, _, _ = trained
    with pytest.raises(ValueError, match="was made for") as e:
        load_checkpoint(d / "full.pt", **{field: value})
    assert msg in str(e.value) and "strict=False" in str(e.value)
    with pytest.warns(UserWarning, match="was made for"):
        load_checkpoint(d / "full.pt", strict=False, **{field: value})


def test_corrupted_checkpoints_give_clear_errors(trained, tmp_path):
    _, d, _, _ = trained
    good = (d / "full.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.pt").write_bytes(os.urandom(4096))
    for name in ("truncated.pt", "garbage.pt"):
        with pytest.raises(ValueError, match="cannot read"):
            load_checkpoint(tmp_path / name)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="neither a randsmooth checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "absent.pt")


class Payload:
    "Unpickling this would run code; a weights-only load must refuse it."
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_a_checkpoint_cannot_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format": FORMAT, "config": {}, "payload": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="cannot read"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned.txt").exists()


def test_weights_for_another_arch_are_refused(trained, tmp_path):
    _, d, _, _ = trained
    ckpt = torch.load(d / "full.pt", weights_only=True)
    ckpt["config"]["arch"] = "cifar_resnet20"; ckpt["config"]["dataset"] = "cifar10"
    torch.save(ckpt, tmp_path / "lying.pt")
    with pytest.raises(ValueError, match="does not fit arch 'cifar_resnet20'"):
        load_checkpoint(tmp_path / "lying.pt")


def test_worker_processes_do_not_change_the_weights(tmp_path):
    "CIFAR-10 trains with random crops and flips; each image's augmentation is seeded by (seed, epoch, index)."
    from helpers import write_fake_cifar10
    write_fake_cifar10(tmp_path, per_batch=6)
    weights = []
    for workers in (0, 2):
        cfg = TrainConfig(dataset="cifar10", arch="small_cnn", epochs=2, batch_size=8, workers=workers)
        model, _ = train(cfg, tmp_path / f"w{workers}.pt", data_root=tmp_path, progress=False)
        weights.append(model.state_dict())
    for k in weights[0]: assert torch.equal(weights[0][k], weights[1][k]), k


def test_the_checkpoint_name_ignores_speed_only_fields():
    from randsmooth.train import checkpoint_path
    assert checkpoint_path(TrainConfig(workers=4)) == checkpoint_path(TrainConfig())
    assert checkpoint_path(TrainConfig(epochs=10)) != checkpoint_path(TrainConfig())
