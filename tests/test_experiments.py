"""Data loaders, architectures, training and checkpoints, the experiment notebooks under papermill, and the CLI."""
import json
import shutil
import os
import pickle
import subprocess
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from randsmooth.data import DATASETS, cifar10, get_dataset, imagenet, mnist, stratified_split
from randsmooth.experiments import CERTIFY_COLUMNS, PREDICT_COLUMNS, certified_accuracy, read_log
from randsmooth.models import ARCHS, build_model
from randsmooth.train import FORMAT, TrainConfig, load_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ORIGINAL_LOGS = ROOT / "data" / "original-logs"


# --- data -------------------------------------------------------------------------------------------------------------

def test_embedded_mnist_split_is_fixed_and_stratified():
    train_set, test_set = mnist("train"), mnist("test")
    assert (len(train_set), len(test_set)) == (4000, 1000)
    ytr, yte = train_set.tensors[1].numpy(), test_set.tensors[1].numpy()
    assert np.bincount(yte).tolist() == [100] * 10 and np.bincount(ytr).tolist() == [400] * 10
    x = test_set.tensors[0]
    assert x.shape == (1000, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(mnist("test").tensors[0], x)                      # the same split every time
    tr, te = stratified_split(np.repeat(np.arange(10), 500), 100)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == 5000


def test_digits():
    d = get_dataset("digits", "test")
    assert len(d) == 300 and d[0][0].shape == (1, 8, 8)


def write_fake_cifar10(root, per_batch=3):
    "A CIFAR-10 directory in the real on-disk format (pickled dicts of uint8 rows and label lists)."
    base = Path(root) / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(base / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": rng.integers(0, 10, per_batch).tolist(),
                         "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                         "filenames": ["x.png"] * per_batch}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                     "truck"], "num_cases_per_batch": per_batch}, f)
    return root


def test_cifar10_from_a_directory(tmp_path):
    "The real files are Python 2 pickles whose keys torchvision's latin-1 load reads as str; the fake matches that."
    write_fake_cifar10(tmp_path)
    train_set, test_set = cifar10(tmp_path, "train"), get_dataset("cifar10", "test", tmp_path)
    assert len(train_set) == 15 and len(test_set) == 3
    x, y = test_set[0]
    assert x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1 and 0 <= y < 10
    raw = test_set.data[0].astype(np.float32).transpose(2, 0, 1) / 255          # test split: no augmentation
    assert np.allclose(x.numpy(), raw)
    assert train_set.classes[0] == "airplane"


def test_cifar10_missing_says_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks data_batch_1"):
        get_dataset("cifar10", "train", tmp_path)


def test_imagenet_from_a_directory(tmp_path):
    for split in ("train", "val"):
        for wnid in ("n01440764", "n01443537"):
            d = tmp_path / split / wnid
            d.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((300, 260, 3), 40 * i, np.uint8)).save(d / f"img{i}.JPEG", format="JPEG")
    test_set = imagenet(tmp_path, "test")
    assert len(test_set) == 4 and test_set[0][0].shape == (3, 224, 224) and test_set.classes == ["n01440764", "n01443537"]
    assert get_dataset("imagenet", "train", tmp_path)[0][0].shape == (3, 224, 224)
    with pytest.raises(FileNotFoundError, match="one directory per class"):
        imagenet(tmp_path / "elsewhere")


# --- models -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch,dataset,batch", [("small_cnn", "mnist", 3), ("small_cnn", "digits", 3),
                                                ("cifar_resnet110", "cifar10", 2), ("cifar_resnet20", "cifar10", 2),
                                                ("resnet50", "imagenet", 1)])
def test_architecture_output_shape(arch, dataset, batch):
    info = DATASETS[dataset]
    model = build_model(arch, dataset).eval()
    with torch.no_grad():
        assert model(torch.rand(batch, *info.shape)).shape == (batch, info.num_classes)
    assert {"0.mean", "0.std"} <= set(model.state_dict())                  # normalisation travels with the weights


def test_resnet110_depth():
    convs = [m for m in build_model("cifar_resnet110", "cifar10").modules() if isinstance(m, torch.nn.Conv2d)]
    assert sum(m.kernel_size == (3, 3) for m in convs) == 109              # 1 stem + 54 blocks x 2, plus the fc: 110


# --- training and checkpoints -----------------------------------------------------------------------------------------

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


def test_resume_continues_exactly(trained):
    cfg, d, model, _ = trained
    train(TrainConfig(**{**asdict(cfg), "epochs": 2}), d / "part.pt", progress=False)
    resumed, hist = train(cfg, d / "part.pt", progress=False)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


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
    with pytest.raises(ValueError, match="not a randsmooth checkpoint"):
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


# --- experiment notebooks, CLI, logs ----------------------------------------------------------------------------------

def papermill(nb, out, env, *params):
    args = [str(BIN / "papermill"), "-k", "python3", "--no-progress-bar", str(nb), str(out)]
    for k, v in params: args += ["-p", k, str(v)]
    res = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    return res


@pytest.fixture()
def home(tmp_path):
    return {**os.environ, "RANDSMOOTH_HOME": str(tmp_path), "MPLBACKEND": "Agg"}


def test_notebooks_under_papermill_with_small_parameters(tmp_path, home):
    small = [("dataset", "digits"), ("sigma", 0.5)]
    papermill(ROOT / "nbs/train.ipynb", tmp_path / "train.ipynb", home, *small, ("epochs", 2))
    ckpts = list((tmp_path / "checkpoints").glob("digits-small_cnn-noise0.5-ep2-*.pt"))
    assert len(ckpts) == 1 and ckpts[0].with_suffix(".log.tsv").exists() and ckpts[0].with_suffix(".json").exists()
    run = [*small, ("n", 200), ("skip", 10), ("checkpoint", ckpts[0])]
    papermill(ROOT / "nbs/certify.ipynb", tmp_path / "certify.ipynb", home, *run)
    papermill(ROOT / "nbs/predict.ipynb", tmp_path / "predict.ipynb", home, *run)
    (cert_log,) = (tmp_path / "results/certify").rglob("*.tsv")
    (pred_log,) = (tmp_path / "results/predict").rglob("*.tsv")
    assert "sigma0.5-n0_100-n200-alpha0.001-skip10-max-1-seed0-test" in cert_log.name
    df = read_log(cert_log)
    assert list(df.columns) == CERTIFY_COLUMNS and len(df) == 30 and (df["n"] == 200).all()
    assert list(read_log(pred_log).columns) == PREDICT_COLUMNS
    meta = json.loads(cert_log.with_suffix(".json").read_text())
    assert meta["status"] == "complete" and meta["params"]["sigma"] == 0.5 and meta["versions"]["torch"]
    assert meta["git_commit"] and meta["device_name"].startswith("CPU")


def test_certify_notebook_as_a_user_types_it(tmp_path, home):
    "papermill nbs/certify.ipynb out.ipynb -p sigma 0.5: no model for that sigma yet, so it trains one first."
    res = subprocess.run([str(BIN / "papermill"), "nbs/certify.ipynb", str(tmp_path / "out.ipynb"), "-p", "sigma", "0.5",
                          "--stdout-file", str(tmp_path / "stdout.txt")], cwd=ROOT, env=home, capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-6000:]
    out = (tmp_path / "stdout.txt").read_text()
    assert "training the default recipe first" in out and "1000 inputs, sigma = 0.5" in out
    acc = {float(l.split()[4]): float(l.split()[5].rstrip("%")) for l in out.splitlines() if "certified accuracy at radius" in l}
    assert acc[0.0] > 80 and acc[0.5] > 50                                  # a real model, really certified


def test_cli_end_to_end(tmp_path, home):
    cli = str(BIN / "randsmooth")
    common = ["--dataset", "digits", "--sigma", "0.25", "--no-progress"]
    run = lambda *a: subprocess.run([cli, *a], cwd=tmp_path, env=home, capture_output=True, text=True, timeout=600)
    r = run("train", *common, "--epochs", "3", "--lr-step", "2")
    assert r.returncode == 0 and "checkpoint:" in r.stdout, r.stderr[-3000:]
    r = run("certify", *common, "--n", "300", "--skip", "5", "--no-train-if-missing")
    assert r.returncode == 2 and "Train one first" in r.stderr               # the default recipe (90 epochs) is not trained
    ckpt = next((tmp_path / "checkpoints").glob("*.pt"))
    r = run("certify", *common, "--n", "300", "--skip", "5", "--checkpoint", str(ckpt), "--radii", "0", "0.5")
    assert r.returncode == 0 and "certified accuracy at radius 0.5:" in r.stdout, r.stderr[-3000:]
    r = run("predict", *common, "--skip", "5", "--checkpoint", str(ckpt))
    assert r.returncode == 0 and "abstained" in r.stdout, r.stderr[-3000:]
    r = run("certify", "--sigma", "0")
    assert r.returncode == 2 and "sigma must lie in (0, inf)" in r.stderr
    assert subprocess.run([cli, "--help"], capture_output=True, text=True).stdout.count("certify") >= 1


def test_log_format_is_read_back_by_the_analysis(tmp_path):
    "Our logs and the paper's original ones go through the same reader and the same certified accuracy."
    log = tmp_path / "log.tsv"
    log.write_text("\t".join(CERTIFY_COLUMNS) + "\n"
                   "0\t7\t7\t0.812000\t1\t0:00:01.500000\t0.999\t9990\t100\t10000\t0.001\t0.25\n"
                   "1\t2\t-1\t0.000000\t0\t0:00:01.250000\t0.41\t4100\t100\t10000\t0.001\t0.25\n"
                   "2\t1\t3\t0.300000\t0\t0:00:01.000000\t0.8\t8000\t100\t10000\t0.001\t0.25\n")
    df = read_log(log)
    assert df["time"].tolist() == [1.5, 1.25, 1.0]
    assert certified_accuracy(df, [0.0, 0.5, 1.0]).tolist() == [1 / 3, 1 / 3, 0.0]
    paper = read_log(ORIGINAL_LOGS / "certify/cifar10/resnet110/noise_0.25/test/sigma_0.25")
    assert len(paper) == 500
    assert certified_accuracy(paper, [0.25, 0.5]).round(3).tolist() == [0.600, 0.428]    # the paper's CIFAR-10 table


# --- long runs: sharding under torchrun, and resume after SIGKILL ------------------------------------------------------

def _without_time(path):
    return read_log(path).drop(columns=["time"])


def test_torchrun_two_ranks_merge_to_the_single_process_log(tmp_path, home):
    "Two CPU processes (gloo) under torchrun: one merged, sorted log, equal to a single-process run but for time."
    args = ["certify", "--dataset", "digits", "--sigma", "0.5", "--num-samples", "300", "--skip", "4", "--no-progress",
            "--seed", "3"]
    single = {**home, "RANDSMOOTH_HOME": str(tmp_path / "single")}
    r = subprocess.run([str(BIN / "randsmooth"), *args], env=single, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    sharded = {**home, "RANDSMOOTH_HOME": str(tmp_path / "sharded")}
    shutil.copytree(tmp_path / "single" / "checkpoints", tmp_path / "sharded" / "checkpoints")
    r = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "randsmooth", *args],
                       env=sharded, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (a,) = (tmp_path / "single" / "results").rglob("*.tsv")
    (b,) = (tmp_path / "sharded" / "results").rglob("*.tsv")
    assert not list(b.parent.glob("*.rank*.tsv"))                            # shard logs merged away
    assert _without_time(b).equals(_without_time(a)) and len(read_log(b)) == 75
    assert json.loads(b.with_suffix(".json").read_text())["processes"] == 2


def test_a_run_killed_with_sigkill_resumes_with_nothing_lost_or_repeated(tmp_path, home):
    import signal
    import time
    args = [str(BIN / "randsmooth"), "certify", "--dataset", "digits", "--sigma", "0.5", "--n", "2000", "--batch", "500",
            "--no-progress"]
    ref_env = {**home, "RANDSMOOTH_HOME": str(tmp_path / "ref")}
    assert subprocess.run(args, env=ref_env, capture_output=True, timeout=900).returncode == 0
    env = {**home, "RANDSMOOTH_HOME": str(tmp_path / "killed")}
    shutil.copytree(tmp_path / "ref" / "checkpoints", tmp_path / "killed" / "checkpoints")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = None
    for _ in range(600):                                              # wait until some inputs are logged
        time.sleep(0.1)
        logs = list((tmp_path / "killed" / "results").rglob("*.tsv"))
        if logs and len(logs[0].read_text().splitlines()) > 20:
            log = logs[0]
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert log is not None and len(log.read_text().splitlines()) < 301   # killed mid-run
    assert subprocess.run(args, env=env, capture_output=True, timeout=900).returncode == 0
    (ref,) = (tmp_path / "ref" / "results").rglob("*.tsv")
    resumed = read_log(log)
    assert resumed["idx"].tolist() == list(range(300))                  # none lost, none repeated
    assert _without_time(log).equals(_without_time(ref))                # identical to the uninterrupted run
