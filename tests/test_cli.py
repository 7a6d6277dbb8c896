"""The command line, in process: what each option means, and one clear line for each thing a user can get wrong."""
import json
import re
import shlex
from pathlib import Path

import pytest
import torch

from helpers import ROOT, cli
from randsmooth.cli import build_parser
from randsmooth.logs import read_log


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    "A directory with a digits model trained for two epochs; returns (dir, options naming it)."
    d = tmp_path_factory.mktemp("cli")
    status, out, err = cli("train", "--dataset", "digits", "--sigma", "0.5", "--epochs", "2", "--checkpoint-dir", d,
                           "--no-progress")
    assert status == 0, err
    ckpt = out.split("checkpoint: ")[1].strip()
    return d, ["--dataset", "digits", "--sigma", "0.5", "--checkpoint", ckpt, "--results-dir", d, "--no-progress"]


def logs(d, kind):
    return sorted((Path(d) / kind).rglob("*.tsv"))


def test_predict_n_means_what_the_user_typed(home, tmp_path):
    d, opts = home
    opts = [*opts[:-3], "--results-dir", tmp_path, "--no-progress"]
    assert cli("predict", *opts, "--n", "1000", "--skip", "30")[0] == 0
    assert cli("predict", *opts, "--skip", "30")[0] == 0                     # PREDICT's own default
    assert sorted(read_log(f)["n"].iloc[0] for f in logs(tmp_path, "predict")) == [100, 1000]


@pytest.mark.parametrize("args,msg", [
    (["--max", "-5"], "max must be -1 (the whole split) or an index >= 1"),
    (["--max-index", "0"], "max must be -1"),
    (["--seed", "-1"], "seed must be an integer >= 0"),
    (["--sigma", "1e40", "--noise", "0.5"], "sigma = 1e+40 is too large for torch.float32 inputs"),
    (["--n", "0"], "n must be an integer >= 1")])
def test_bad_values_stop_before_anything_is_written(home, tmp_path, args, msg):
    _, opts = home
    status, _, err = cli("certify", *opts[:-3], "--results-dir", tmp_path / "r", *args)
    assert status == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_no_cuda_says_so(home):
    status, _, err = cli("certify", *home[1], "--device", "cuda")
    assert status == 2 and "this machine has no CUDA device" in err and "corrupted" not in err


def test_damaged_files_are_named_in_one_line(home, tmp_path):
    _, opts = home
    opts = [*opts[:-3], "--results-dir", tmp_path, "--no-progress", "--n", "100", "--skip", "30"]
    assert cli("certify", *opts)[0] == 0
    (log,) = logs(tmp_path, "certify")
    good = log.read_text()
    lines = good.split("\n")
    log.write_text("\n".join(lines[:3] + ["6\t0\t0\t0.61"] + lines[4:]))        # a damaged middle line
    status, _, err = cli("certify", *opts)
    assert status == 2 and f"{log}, line 4: 4 fields" in err and "--repair" in err
    status, out, err = cli("certify", *opts, "--repair")
    assert status == 0 and "moved lines [4]" in out, err
    assert sorted(read_log(log)["idx"]) == sorted(int(l.split("\t")[0]) for l in lines[1:] if l)
    log.with_suffix(".json").write_text("{not json")
    status, _, err = cli("certify", *opts)
    assert status == 2 and f"{log.with_suffix('.json')} is damaged (not JSON" in err and "Traceback" not in err
    log.with_suffix(".json").unlink()
    log.write_text("idx\tscore\n0\t0.5\n")
    status, _, err = cli("certify", *opts)
    assert status == 2 and f"{log} is not a certify, predict or sequential log" in err


def test_an_unwritable_results_directory_is_one_line(home):
    status, _, err = cli("certify", *home[1][:-3], "--results-dir", "/dev/null/results")
    assert status == 2 and "cannot write results under /dev/null/results" in err and len(err.strip().splitlines()) == 1


def test_help_says_what_each_option_means():
    text = build_parser()._subparsers._group_actions[0].choices["certify"].format_help()
    for option in ("--max-index MAX, --max MAX", "--num-samples N, --n N", "--repair", "--wait"):
        assert option in text, option
    assert "take the inputs with index < max; -1: the whole split" in " ".join(text.split())


def readme_torchrun_commands():
    "The torchrun commands of the README, exactly as printed (continued lines joined, comments dropped)."
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    return [shlex.split(l.split("#")[0]) for l in text.splitlines() if l.strip().startswith("torchrun ")]


@pytest.mark.parametrize("command", readme_torchrun_commands())
def test_the_readme_torchrun_commands_reach_randsmooth_intact(command):
    "torchrun reads its own options anywhere on its line, abbreviations included: ours must pass through."
    from torch.distributed.run import get_args_parser
    theirs = get_args_parser().parse_args(command[1:])
    assert theirs.module and theirs.training_script == "randsmooth"
    ours = build_parser().parse_args(theirs.training_script_args)
    given = dict(zip(command[::1], command[1::1]))
    assert ours.n == int(given["--num-samples"]) and ours.skip == int(given.get("--skip", 1))
    if "--max-index" in given: assert ours.max == int(given["--max-index"])


def test_the_readme_has_torchrun_commands():
    assert len(readme_torchrun_commands()) >= 2


def test_values_are_checked_before_training(tmp_path):
    "With no model yet, a bad sigma is refused before 90 epochs are trained for nothing."
    status, _, err = cli("certify", "--dataset", "digits", "--sigma", "1e40", "--noise", "0.5", "--checkpoint-dir",
                         tmp_path / "ck", "--results-dir", tmp_path / "r", "--no-progress")
    assert status == 2 and "too large" in err and not (tmp_path / "ck").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize("args,msg", [(["--device", "gpu"], "is not a torch device"),
                                      (["--arch", "cifar_resnet20"], "does not fit digits inputs"),
                                      (["--momentum", "1.5"], "momentum must be in [0, 1)")]
                         + ([(["--device", "cuda"], "this machine has no CUDA device")] if not torch.cuda.is_available() else []))
def test_train_says_what_is_wrong_in_one_line(tmp_path, args, msg):
    status, _, err = cli("train", "--dataset", "digits", "--checkpoint-dir", tmp_path, "--no-progress", *args)
    assert status == 2 and msg in err and len(err.strip().splitlines()) == 1, err
