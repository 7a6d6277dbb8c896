"""Helpers shared by the tests: where things are, fake data directories, and running the package's commands."""
import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ORIGINAL_LOGS = ROOT / "data" / "original-logs"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# book/build.py, the book's build and how it executes a chapter (as book_build: `build` is PyPA's package)
book_build = _load("book_build", ROOT / "book" / "build.py")


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


def papermill(nb, out, env, *params):
    args = [str(BIN / "papermill"), "-k", "python3", "--no-progress-bar", str(nb), str(out)]
    for k, v in params: args += ["-p", k, str(v)]
    res = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    return res


def home_env(tmp_path):
    "An environment whose results/ and checkpoints/ live in tmp_path."
    return {**os.environ, "RANDSMOOTH_HOME": str(tmp_path), "MPLBACKEND": "Agg"}


def cli(*argv):
    "(exit status, stdout, stderr) of `randsmooth ARGV`, run in this process."
    import contextlib, io
    from randsmooth.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()
