"""The paper's released models as they are: loaded by format, used by the command line, and its reproduce --models."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers import ROOT, cli, write_fake_cifar10
from randsmooth.logs import certified_accuracy, read_log
from randsmooth.train import checkpoint_sha256, load_model

RELEASED = ROOT / "data" / "authors-checkpoints" / "cifar10" / "cifar_resnet20"
SHARED = ROOT.parent / "shared" / "reference" / "authors-checkpoints" / "cifar10"


@pytest.mark.parametrize("arch", ["cifar_resnet20", "cifar_resnet110"])
def test_the_authors_logits(arch):
    "Checkpoints saved by the authors' own code give their model's logits (ResNet-110: when shared/ is beside us)."
    folder = RELEASED if arch == "cifar_resnet20" else SHARED / arch
    if not folder.is_dir(): pytest.skip(f"{folder} is not here (only the ResNet-20 is shipped)")
    model, info = load_model(folder / "checkpoint.pth.tar")
    assert (info["format"], info["config"]["arch"], info["epoch"]) == ("cohen2019", arch, 90)
    with torch.no_grad(): got = model(torch.load(folder / "inputs.pt"))
    want = torch.load(folder / "logits.pt")
    assert (got - want).abs().max() <= 1e-4 * want.abs().max()


@pytest.fixture()
def archive(tmp_path):
    "The authors' archive layout with the shipped ResNet-20 at noise 0.25, and a fake CIFAR-10 beside it."
    ckpt = tmp_path / "models" / "cifar10" / "resnet20" / "noise_0.25" / "checkpoint.pth.tar"
    ckpt.parent.mkdir(parents=True)
    shutil.copy(RELEASED / "checkpoint.pth.tar", ckpt)
    write_fake_cifar10(tmp_path / "data")
    return tmp_path, ckpt


def test_certify_takes_the_authors_checkpoint(archive):
    d, ckpt = archive
    status, out, err = cli("certify", "--dataset", "cifar10", "--arch", "cifar_resnet20", "--checkpoint", ckpt,
                           "--data-root", d / "data", "--results-dir", d / "results", "--n0", 10, "--n", 100,
                           "--batch", 100, "--no-progress")
    assert status == 0, err
    log = Path(out.split("log: ")[1].split("\n")[0])
    assert log.parent.name == f"cifar10-resnet20-noise_0.25-{checkpoint_sha256(ckpt)[:8]}"   # not "checkpoint.pth"
    df = read_log(log)
    assert list(df.columns[:6]) == ["idx", "label", "predict", "radius", "correct", "time"]    # the paper's first
    assert len(df) == 3 and len(certified_accuracy(df, [0.0, 0.5])) == 2
    record = json.loads(log.with_suffix(".json").read_text())
    assert record["checkpoint_sha256"] == checkpoint_sha256(ckpt) and record["checkpoint"] == str(ckpt)
    # its folder says noise 0.25: a run at another noise level is refused, as with our own checkpoints
    status, _, err = cli("certify", "--dataset", "cifar10", "--arch", "cifar_resnet20", "--checkpoint", ckpt,
                         "--sigma", 0.5, "--data-root", d / "data", "--results-dir", d / "results", "--no-progress")
    assert status == 2 and "was made for sigma=0.25 (asked for 0.5)" in err


def test_reproduce_models_names_every_missing_file(tmp_path):
    status, _, err = cli("reproduce", "--dataset", "cifar10", "--models", tmp_path, "--dry-run")
    assert status == 2 and "4 missing" in err and "cifar10/resnet110/noise_1.00/checkpoint.pth.tar" in err
    status, _, err = cli("reproduce", "--models", tmp_path)
    assert status == 2 and "add --dataset cifar10" in err


def test_estimate_projects_and_writes_nothing(tmp_path):
    status, out, err = cli("certify", "--sigma", 0.25, "--n", 500, "--max", 40, "--results-dir", tmp_path,
                           "--estimate")
    assert status == 0, err
    assert "40 inputs to do with CERTIFY on cpu" in out and "forward passes: 600 per input; 24,000 in all" in out
    assert "projected wall time: 0:00:" in out and list(tmp_path.iterdir()) == []
    status, out, err = cli("certify", "--sigma", 0.25, "--method", "sequential", "--radii", 0.25, "--n", 10_000,
                           "--max", 20, "--results-dir", tmp_path, "--estimate")
    assert status == 0 and "with the sequential method" in out and "vary by input" in out, err
