import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")
from helpers import book_build as build  # noqa: E402  (book/build.py)

# Under pytest-xdist each worker's torch, and every process it starts (the book's kernels, papermill, the CLI), gets
# its share of the cores: with more OpenMP threads than cores, their threads spin against each other (measured on
# the 2-core machine: a 58 s test took 550 s).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, build.cores() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))


# The tests that read the book's build: all of test_book.py and each chapter's test run. One xdist worker runs them
# all (the scheduler below), so the book is built once per test run; they carry the marker `book`.
BOOK_TESTS = ("tests/test_book.py::", "tests/test_notebooks.py::test_notebook_runs[")


def pytest_collection_modifyitems(config, items):
    "The marker `book` and the scheduler's rule name the same tests."
    wrong = [i.nodeid for i in items if (i.get_closest_marker("book") is not None) != i.nodeid.startswith(BOOK_TESTS)]
    if wrong: raise pytest.UsageError(f"marked `book` but not in conftest.BOOK_TESTS, or the reverse: {wrong}")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    "`-n N`: the book's tests go to one worker as one unit, every other test on its own to any worker."
    if config.getvalue("dist") == "each": return None
    from xdist.scheduler import LoadScopeScheduling

    class BookOnOneWorker(LoadScopeScheduling):    # (pytest 9.2 ignores xdist 3.8's own xdist_group markers)
        def _split_scope(self, nodeid):
            return "book" if nodeid.startswith(BOOK_TESTS) else nodeid

    return BookOnOneWorker(config, log)


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def built_book():
    """book/build.py, once per test run: every browser check and every chapter's test run read this one build.

    The run holds the checkout's book lock until it ends, so another `make test` or `make book` cannot rebuild the book
    under its feet: that one stops at once and says why."""
    lock = build.hold_lock()
    if lock is None: pytest.fail(build.BUSY)
    try:
        for stale in (build.RECORD, build.BUILD / "html"):       # only this run's build may be read
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
        code, said = build._run([sys.executable, str(ROOT / "book" / "build.py")], ROOT,
                                {**os.environ, "RANDSMOOTH_BOOK_LOCK": str(os.getpid())}, 1800)
        runs = json.loads(build.RECORD.read_text()) if build.RECORD.exists() else {}
        yield SimpleNamespace(returncode=code, output=said[-10000:], runs=runs, html=build.BUILD / "html")
    finally:
        lock.release()


class Runs(dict):
    "Chapter name -> its execution's record (ok, seconds, error); a chapter not in it is executed when asked for."
    def __missing__(self, name):
        (ROOT / "_build").mkdir(exist_ok=True)
        where = Path(tempfile.mkdtemp(prefix="nbtest-", dir=ROOT / "_build"))   # inside the project: its results/
        try:
            nb = ROOT / "nbs" / f"{name}.ipynb"
            (where / nb.name).write_text(json.dumps(build.strip_nbdev(json.loads(nb.read_text()))))
            self[name] = build.execute([name], where, jobs=1)[name]
        finally:
            shutil.rmtree(where, ignore_errors=True)
        return self[name]


@pytest.fixture(scope="session")
def chapter_runs(request):
    "The book's record when this test run builds the book (a chapter is executed once), else executions on demand."
    if any(item.path.name == "test_book.py" for item in request.session.items):
        return Runs(request.getfixturevalue("built_book").runs)
    return Runs()
