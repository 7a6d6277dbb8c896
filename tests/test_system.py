"""System tests: the experiment notebooks under papermill, the command line in its own processes, torchrun,
kill -9 and resume, and two runs started on one log at once. Each starts real processes; together they take minutes."""
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import BIN, ROOT, home_env, papermill
from randsmooth.logs import CERTIFY_COLUMNS, PREDICT_COLUMNS, read_log

pytestmark = pytest.mark.system


@pytest.fixture()
def home(tmp_path):
    return home_env(tmp_path)


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
    assert "training the default recipe first" in out and "1000 inputs, σ = 0.5" in out
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
    (log,) = (tmp_path / "results" / "certify").rglob("*.tsv")
    meta = json.loads(log.with_suffix(".json").read_text())           # run from outside the repository:
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", meta["git_commit"]), meta["git_commit"]   # still its commit
    assert meta["cpu"] and meta["cpu"] in meta["device_name"] and len(meta["checkpoint_sha256"]) == 64
    r = run("predict", *common, "--skip", "5", "--checkpoint", str(ckpt))
    assert r.returncode == 0 and "abstained" in r.stdout, r.stderr[-3000:]
    r = run("certify", "--sigma", "0")
    assert r.returncode == 2 and "sigma must lie in (0, inf)" in r.stderr
    assert subprocess.run([cli, "--help"], capture_output=True, text=True).stdout.count("certify") >= 1


def _without_time(path):
    return read_log(path).drop(columns=["time"])


def test_torchrun_two_ranks_merge_to_the_single_process_log(tmp_path, home):
    "Two CPU processes (gloo) under torchrun: one merged, sorted log, equal to a single-process run but for time."
    args = ["certify", "--dataset", "digits", "--sigma", "0.5", "--num-samples", "300", "--skip", "4", "--no-progress",
            "--seed", "3", "--max-index", "280"]
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
    assert _without_time(b).equals(_without_time(a)) and len(read_log(b)) == 70
    assert json.loads(b.with_suffix(".json").read_text())["processes"] == 2


def test_a_run_killed_with_sigkill_resumes_with_nothing_lost_or_repeated(tmp_path, home):
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


def test_two_runs_started_on_one_log(tmp_path, home):
    "A second run stops at once naming the run that holds the log; with --wait it waits, then does what is left."
    from randsmooth.logs import locked
    args = [str(BIN / "randsmooth"), "certify", "--dataset", "digits", "--sigma", "0.5", "--n", "1000", "--no-progress"]
    assert subprocess.run([*args, "--max-index", "2"], env=home, capture_output=True, timeout=900).returncode == 0
    log = next((tmp_path / "results").rglob("*max2-*.tsv")).with_name(
        "sigma0.5-n0_100-n1000-alpha0.001-skip1-max-1-seed0-test.tsv")           # the whole split's log
    with locked(log):                                                  # this test process is "the other run"
        second = subprocess.run(args, env=home, capture_output=True, text=True, timeout=900)
        assert second.returncode == 2 and f"is being written by another run (process {os.getpid()} " in second.stderr
        waiting = subprocess.Popen([*args, "--wait"], env=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        said = []                       # its stderr until it says that it waits: not a fixed sleep, which a slow
        sel = selectors.DefaultSelector()          # start (torch's import on a loaded machine) would outlast
        sel.register(waiting.stderr, selectors.EVENT_READ)
        deadline = time.time() + 600
        while not any("waiting for the run writing" in l for l in said) and time.time() < deadline:
            if sel.select(timeout=5): said.append(waiting.stderr.readline())
            if waiting.poll() is not None: break
        assert any("waiting for the run writing" in l for l in said), "".join(said)[-3000:]
        assert waiting.poll() is None                                 # still waiting for the lock
    out, err = waiting.communicate(timeout=900)
    assert waiting.returncode == 0, err[-3000:]
    assert read_log(log)["idx"].tolist() == list(range(300))


def test_two_runs_at_once_never_write_an_input_twice(tmp_path, home):
    "Started together, each either stops on the lock or finds the other's work done: every input once."
    args = [str(BIN / "randsmooth"), "certify", "--dataset", "digits", "--sigma", "0.5", "--n", "1000", "--no-progress"]
    assert subprocess.run([*args, "--max-index", "2"], env=home, capture_output=True, timeout=900).returncode == 0
    runs = [subprocess.Popen(args, env=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(r.wait(timeout=900), r.stderr.read()) for r in runs]
    for code, err in results: assert code == 0 or (code == 2 and "is being written by another run" in err), err
    (log,) = (tmp_path / "results").rglob("*max-1-*.tsv")
    assert sorted(read_log(log)["idx"].tolist()) == list(range(300))


def test_notebook_parameters_are_typed_and_known(tmp_path, home):
    "papermill's -p passes strings and only warns about names the notebook lacks: both are errors that name them."
    for params, said in ((["-p", "max_index", "20"], "unknown parameter max_index: this notebook takes dataset"),
                         (["-p", "sigma", "abc"], "sigma must be a number; got 'abc'"),
                         (["-p", "label_known", "maybe"], "label_known must be true or false (or 1 or 0)")):
        res = subprocess.run([str(BIN / "papermill"), "-k", "python3", "nbs/certify.ipynb", str(tmp_path / "o.ipynb"),
                              *params], cwd=ROOT, env=home, capture_output=True, text=True, timeout=300)
        assert res.returncode != 0 and said in res.stderr, res.stderr[-3000:]
    assert not (tmp_path / "results").exists() and not (tmp_path / "checkpoints").exists()   # refused before any work


def _tiny_notebook(path):
    "A notebook that prints ten lines, alternating stdout and stderr, each flushed."
    import nbformat
    code = "import sys\nfor i in range(10): print(f'line {i}', file=sys.stdout if i % 2 == 0 else sys.stderr, flush=True)"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)],
                                            metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                     "display_name": "Python 3"}}), path)
    return path


@pytest.mark.parametrize("into", ["file", "pipe"])
def test_make_run_survives_redirection(tmp_path, home, into):
    "`make run > run.log 2>&1` and `make run | tee run.log`: every line once, in order, no NUL bytes."
    nb, log = _tiny_notebook(tmp_path / "tiny.ipynb"), tmp_path / "run.log"
    make = f"make -s -o .venv/.installed run RUN_NB={nb} RUN_OUT={tmp_path}/out/tiny.ipynb RUN_PARAMS="
    shell = f"{{ echo before; {make}; }} > {log} 2>&1" if into == "file" else f"{{ echo before; {make}; }} 2>&1 | cat > {log}"
    res = subprocess.run(["bash", "-c", shell], cwd=ROOT, env=home, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    text = log.read_bytes()
    assert b"\0" not in text, text[:300]
    lines = [l for l in text.decode().splitlines() if l.startswith(("line ", "before"))]
    assert lines == ["before"] + [f"line {i}" for i in range(10)], text.decode()[-2000:]
