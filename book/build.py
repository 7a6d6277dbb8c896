"""Build the book: notebooks -> Jupyter Book 1 -> _build/book/html (offline: MathJax served from the book itself).

    python book/build.py            # builds into _build/book/html
"""
import contextlib
import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build" / "book"
SRC = BUILD / "src"
RECORD = BUILD / "executed.json"         # each chapter's execution: ok, seconds, the error (tests/test_notebooks.py)
MATHJAX = "mathjax@3.2.2"
MODULES = ["stats", "theory", "core", "sequential", "sound", "fast", "data", "models", "authors", "train",
           "consistency", "smoothadv", "macer", "smoothmix", "denoise", "logs",
           "experiments",
           "analyze", "baselines", "wong", "attack", "reproduce", "cli"]


def strip_nbdev(nb):
    "nbdev's #| directives are for the exporter: drop them; #| hide cells leave the page, #| code-fold: true folds a"
    " cell's source (Jupyter Book's hide-input); front matter goes."
    cells = []
    for c in nb["cells"]:
        if c["cell_type"] == "raw":
            continue
        if c["cell_type"] == "code":
            lines = "".join(c["source"]).split("\n")
            directives = [l[2:].strip() for l in lines if l.startswith("#|")]
            body = "\n".join(l for l in lines if not l.startswith("#|")).strip("\n")
            if not body:
                continue
            c["source"] = body
            tags = c.setdefault("metadata", {}).setdefault("tags", [])
            if any(d.split()[0] == "hide" for d in directives if d):
                tags.append("remove-cell")
            if any(d.replace(" ", "").lower() == "eval:false" for d in directives):
                tags.append("skip-execution")
            if any(d.replace(" ", "").lower() == "code-fold:true" for d in directives):
                tags.append("hide-input")                   # plumbing: its source behind a "show code" toggle
            if "raises-exception" in tags:                  # nbclient would let the cell fail; nbdev-test would not
                tags.remove("raises-exception")
        cells.append(c)
    nb["cells"] = cells
    return nb


def _comments(obj):
    "Parameter -> inline comment, from the source (fastcore's docments)."
    try:
        from fastcore.docments import docments
        return {k: v for k, v in docments(obj).items() if k != "return" and v}
    except Exception:
        return {}


def _text(s):
    "Docstring or comment text for Markdown: <placeholders> are text, not HTML tags."
    return (s or "").replace("<", "&lt;").replace(">", "&gt;")


def _cell(s):
    "Text for a cell of a Markdown table: | would split the row (outside a table, its escape would show)."
    return _text(s).replace("|", "\\|")


def _comment(module, name):
    "What the source says of a constant: the comment line above its definition, else the comment on its line."
    try:
        lines = inspect.getsource(module).split("\n")
    except (OSError, TypeError):
        return ""
    for i, line in enumerate(lines):
        if re.match(rf"^(?:[A-Z_0-9]+,\s*)*{re.escape(name)}\b[A-Z_0-9, ]*(?::[^=]*)?=", line):
            above = lines[i - 1].strip() if i else ""
            if above.startswith("# ") and not above.startswith("# %%"): return above[2:]   # not nbdev's cell marker
            m = re.search(r"#\s*(.+)$", line)
            return m.group(1).strip() if m and not line.rstrip().endswith(("{", "[", "(")) else ""
    return ""


def _value(obj):
    "A constant's value; functions in it by name (a lambda by its source), never by memory address."
    def named(v):
        if not callable(v): return v
        if getattr(v, "__name__", "") == "<lambda>":
            try:
                return _Raw(inspect.getsource(v).strip().split(":", 1)[1].strip().rstrip(","))
            except (OSError, TypeError, IndexError):
                return _Raw("lambda")
        return _Raw(getattr(v, "__qualname__", repr(v)))
    return {k: named(v) for k, v in obj.items()} if isinstance(obj, dict) else obj


class _Raw(str):
    "A string that pprint shows without quotes."
    def __repr__(self): return str(self)


def _constant(name, obj, module=None):
    "Markdown for one exported constant: its name, its comment in the source, and its value."
    import pprint
    value = pprint.pformat(_value(obj), width=88, compact=True)
    if len(value) > 1500: value = value[:1500] + " ..."
    about = _comment(module, name) if module else ""
    return [f"### `{name}`", "", _text(about), "", f"```python\n{name} = {value}\n```", ""]


def _named(value, module=None):
    "A default as a reader would write it: a function or a module's constant by its name, anything else by repr."
    if inspect.isfunction(value) or inspect.isbuiltin(value): return value.__name__
    if isinstance(value, (tuple, list, dict, set)):                 # not 0, which is also SELECT
        for k, v in (vars(module).items() if module else ()):
            if k.isupper() and v is value: return k
    return repr(value)


def _signature(kind, name, target, width=100, module=None):
    "`function name(a, b=1)`, or one parameter per line when that is wider than the book's code column."
    try:
        params = [str(p) if p.default is inspect.Parameter.empty else
                  str(p).replace(repr(p.default), _named(p.default, module))
                  for p in inspect.signature(target).parameters.values() if p.name != "self"]
    except (TypeError, ValueError):
        return f"{kind} {name}(...)"
    line = f"{kind} {name}({', '.join(params)})"
    return line if len(line) <= width else f"{kind} {name}(\n" + "".join(f"    {p},\n" for p in params) + ")"


def _entry(name, obj, module=None):
    "Markdown for one exported function or class: signature, docstring, parameters with their comments."
    if not (inspect.isclass(obj) or callable(obj)): return _constant(name, obj, module)
    kind = "class" if inspect.isclass(obj) else "function"
    target = obj.__init__ if inspect.isclass(obj) else obj
    out = [f"### `{name}`", "", f"```python\n{_signature(kind, name, target, module=module)}\n```", "",
           _text(inspect.getdoc(obj)), ""]
    params = inspect.signature(target).parameters if callable(target) else {}
    comments = _comments(target)
    rows = [(p, "" if v.default is inspect.Parameter.empty else _named(v.default, module), comments.get(p, ""))
            for p, v in params.items() if p != "self"]
    if any(c for _, _, c in rows):
        out += ["| parameter | default | meaning |", "|---|---|---|"]
        out += [f"| `{p}` | `{d}` | {_cell(c)} |" if d else f"| `{p}` | | {_cell(c)} |" for p, d, c in rows]
        out.append("")
    if inspect.isclass(obj):
        for m, f in inspect.getmembers(obj, inspect.isfunction):
            if not m.startswith("_") and f.__qualname__.startswith(obj.__name__ + "."):
                doc = inspect.cleandoc(f.__doc__) if f.__doc__ else ""       # its own, not torch's inherited one
                if m == "forward" and not doc: continue                      # nn.Module's call: the class says it
                out += [f"- `{name}.{m}{inspect.signature(f)}`".replace("(self, ", "(").replace("(self)", "()")
                        + (f": {_text(doc)}" if doc else "")]
        out.append("")
    return out


def undocumented():
    "Every exported name with no sentence of its own (a docstring, or a constant's comment in the source)."
    missing = []
    for mod in MODULES:
        m = importlib.import_module(f"randsmooth.{mod}")
        for name in getattr(m, "__all__", []):
            obj = getattr(m, name)
            said = inspect.getdoc(obj) if inspect.isclass(obj) or callable(obj) else _comment(m, name)
            if not (said or "").strip(): missing.append(f"randsmooth.{mod}.{name}")
    return missing


def api_page():
    "The API reference: every exported name of every module, from the package itself."
    if missing := undocumented():
        raise ValueError(f"say what each of these is, in a docstring or a comment: {', '.join(missing)}")
    lines = ["# API reference", "",
             "> Every function and class the package exports, with its signature, docstring and parameter comments, "
             "generated from the package when the book is built.", ""]
    for mod in MODULES:
        m = importlib.import_module(f"randsmooth.{mod}")
        lines += [f"## `randsmooth.{mod}`", "", _text((inspect.getdoc(m) or "").split("\n")[0]), ""]
        for name in getattr(m, "__all__", []):
            lines += _entry(name, getattr(m, name), m)
    return "\n".join(lines) + "\n"


def mathjax(static):
    "MathJax 3 from the npm registry (cached under _build/npm), copied into the book as _static/mathjax/."
    cache = ROOT / "_build" / "npm"
    cache.mkdir(parents=True, exist_ok=True)
    tgz = next(cache.glob("mathjax-*.tgz"), None)
    if tgz is None:
        subprocess.run(["npm", "pack", MATHJAX, "--silent"], cwd=cache, check=True, capture_output=True)
        tgz = next(cache.glob("mathjax-*.tgz"))
    with tarfile.open(tgz) as t:
        members = [m for m in t.getmembers() if m.name.startswith("package/es5/")]
        t.extractall(cache / "x", members=members, filter="data")
    shutil.copytree(cache / "x" / "package" / "es5", static / "mathjax", dirs_exist_ok=True)


THEBE = re.compile(r'<script>const THEBE_JS_URL[^<]*</script>\s*|<script[^>]*src="_static/sphinx-thebe\.js[^"]*"></script>\s*')


def drop_thebe(html_dir):
    "Jupyter Book 1 always loads sphinx-thebe, and its inline script appears twice on each page (a SyntaxError in the"
    " browser). Live code is off in this book, so its scripts go."
    for page in html_dir.rglob("*.html"):
        page.write_text(THEBE.sub("", page.read_text()))


# The experiment notebooks, executed by papermill for the book with these parameters (shown on their pages, in the
# cell papermill adds under the defaults): the embedded MNIST digits on the CPU, seconds each. Their runs go to
# _build/book/runs/ (relative paths are the project's), never to results/ or checkpoints/; certify and predict read
# the shipped sigma = 0.25 model.
RUNS = BUILD / "runs"
EXPERIMENTS = {
    "train": {"epochs": 10, "checkpoint_dir": "_build/book/runs/checkpoints", "progress": False},
    "certify": {"results_dir": "_build/book/runs/results", "progress": False, "train_if_missing": False},
    "predict": {"results_dir": "_build/book/runs/results", "progress": False, "train_if_missing": False},
}


def chapters():
    "The book's pages in the order of book/_toc.yml: the front page, then every chapter of every part."
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]


def cores():
    "The cores this process may run on."
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def kernel_env(jobs=1):
    "The environment for the kernels that execute chapters: a non-inline MPLBACKEND (tests set one) hides every figure;"
    " `jobs` kernels at once share the threads (more OpenMP threads than cores spin against each other)."
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    budget = int(env.get("OMP_NUM_THREADS") or cores())           # the threads this build may use, shared out
    if jobs > 1: env["OMP_NUM_THREADS"] = str(max(1, budget // jobs))
    return env


# Every chapter is executed here, before Jupyter Book renders it (its own execution is off): `--jobs` notebooks at a
# time, each in a process of its own, so that one chapter's failure is its own. Each run's record (ok, seconds, the
# error) is kept in _build/book/executed.json, and tests/test_notebooks.py reads it: a chapter that the book executes
# is its test run as well, not executed a second time.
ANSI = re.compile(r"\x1b\[[0-9;]*m")                # the colours of IPython's tracebacks


def _papermill(name, nb):
    "papermill's command for an experiment notebook, with the book's small parameters."
    args = [a for k, v in EXPERIMENTS[name].items() for a in ("-p", k, str(v))]
    return [str(Path(sys.executable).parent / "papermill"), "-k", "python3", "--no-progress-bar", "--cwd",
            str(nb.parent), *args, str(nb), str(nb)]


def _mark_parameters(nb):
    "Say, above the cell papermill added, that the page shows a run with the book's parameters."
    executed = json.loads(nb.read_text())
    at = next(i for i, c in enumerate(executed["cells"]) if "injected-parameters" in c["metadata"].get("tags", []))
    executed["cells"].insert(at, {"cell_type": "markdown", "metadata": {}, "source": (
        "For this book, papermill ran the notebook with the parameters below in place of the defaults above: "
        "small enough to take seconds on a CPU. Every output on this page comes from that run.")})
    nb.write_text(json.dumps(executed, indent=1))


def execute_one(nb):
    "Run one notebook top to bottom in a python3 kernel started beside it, and write its outputs back, even on failure."
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    book = nbformat.read(nb, as_version=4)
    try:    # cells tagged skip-execution (nbdev's #| eval: false) are not run, as nbdev-test does not run them
        NotebookClient(book, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(nb.parent)}}).execute()
    except CellExecutionError as e:
        sys.exit(str(e))
    finally:
        nbformat.write(book, nb)


TIMEOUT = 1500                                   # seconds for one chapter, its kernel's start and end included


def _run(cmd, cwd, env, timeout):
    "Run `cmd` in a process group of its own; past `timeout` the whole group (its kernel too) is killed."
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        err += f"\nkilled after {timeout} s"
    text = ANSI.sub("", out[-3000:] + "\n" + err[-6000:])
    return proc.returncode, "\n".join(l for l in text.split("\n")
                                      if not l.startswith("[IPKernelApp] WARNING")).strip()   # its notice about TCP


def execute(names, src, jobs=None, order=None):
    """Execute the notebooks `names` (in the folder `src`) in place, `jobs` at a time, each in its own process.

    Returns {name: {"ok", "seconds", "error"}}: one notebook's failure is its own, and the others still run.
    `order` ({name: seconds}, a previous build's times) starts the longest first, so that the pool ends together."""
    from concurrent.futures import ThreadPoolExecutor
    jobs = jobs or cores()
    order = order or {}       # with no times yet: the experiments (they train and certify) first, then the largest
    names = sorted(names, key=lambda n: (-order.get(n, 0), n not in EXPERIMENTS, -(src / f"{n}.ipynb").stat().st_size))
    env = kernel_env(min(jobs, len(names)))

    def run(name):
        nb = src / f"{name}.ipynb"
        cmd = _papermill(name, nb) if name in EXPERIMENTS else [sys.executable, __file__, "--execute", str(nb)]
        start = time.time()
        try:
            code, said = _run(cmd, src, env, TIMEOUT)
            if code == 0 and name in EXPERIMENTS: _mark_parameters(nb)
        except Exception as e:                        # whatever goes wrong is this chapter's failure, not the pool's
            code, said = 1, f"{type(e).__name__}: {e}"
        print(f"executed {name}.ipynb in {time.time() - start:.0f} s" + ("" if code == 0 else ": FAILED"), flush=True)
        return name, {"ok": code == 0, "seconds": round(time.time() - start, 1), "error": "" if code == 0 else said}

    with ThreadPoolExecutor(jobs) as pool:
        return dict(pool.map(run, names))


# What a textbook would not print (tests/test_book.py tests each rule): NumPy's scalar reprs, paths of the machine
# that built the book (its checkout and home wherever they are, and the usual system roots), walls of lines, and a
# figure drawn twice. The build fails on any of them, naming the cell.
NUMPY_REPR = re.compile(r"\bnp\.(?:float|int|uint|bool|complex|str)\w*\(")
MACHINE_PATH = re.compile("|".join([re.escape(str(ROOT)), re.escape(str(Path.home())) + "/",
                                    r"(?<![\w.~:/-])/(?:home|tmp|work|root|Users|var|mnt|opt|srv|usr|private)/[\w.-]"]))
MAX_LINES = 30                                 # printed lines in one output


def _texts(output):
    "The text a reader sees in one output: a stream, or the plain text of a result (an HTML table is checked as HTML)."
    if "text" in output: return ["".join(output["text"])]
    data = output.get("data", {})
    return ["".join(v) for k, v in data.items() if k in ("text/plain", "text/html", "text/markdown")
            and not (k == "text/plain" and "text/html" in data)]


def audit(notebooks):
    "Every output of the executed `notebooks` a textbook would not print: [(chapter, cell, what)]."
    import hashlib
    found, figures = [], {}
    for nb in notebooks:
        for i, cell in enumerate(json.loads(Path(nb).read_text())["cells"]):
            where = (Path(nb).stem, i)
            for out in cell.get("outputs", []):
                for text in _texts(out):
                    for rule in (NUMPY_REPR, MACHINE_PATH):
                        if m := rule.search(text):
                            found.append((*where, f"prints {text[max(0, m.start() - 30):m.end() + 30]!r}"))
                    if "text/html" not in out.get("data", {}) and text.rstrip("\n").count("\n") >= MAX_LINES:
                        found.append((*where, f"prints {text.count(chr(10))} lines: {text[:60]!r}"))
                png = out.get("data", {}).get("image/png")
                if png:
                    key = hashlib.sha256("".join(png).encode()).hexdigest()
                    if key in figures: found.append((*where, f"draws the figure {figures[key][0]} cell "
                                                             f"{figures[key][1]} drew"))
                    figures.setdefault(key, where)
    return found


LOCK = ROOT / "_build" / ".book.lock"     # one build of the book at a time in a checkout


BUSY = (f"another build of the book, or a test run reading one, is under way in this checkout ({LOCK} is held): "
        "wait until it ends")


def hold_lock():
    "The checkout's book lock, held; None (at once) if another build or a test run reading its build holds it."
    from filelock import FileLock, Timeout
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock


@contextlib.contextmanager
def book_lock():
    "Hold the checkout's book lock for a build, or stop at once saying who may hold it."
    if os.environ.get("RANDSMOOTH_BOOK_LOCK") == str(os.getppid()):    # the test run that started this build holds it
        yield
        return
    lock = hold_lock()
    if lock is None: sys.exit(BUSY)
    try:
        yield
    finally:
        lock.release()


def main(jobs=None):
    with book_lock():
        _main(jobs)


def _main(jobs):
    previous = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    for stale in (SRC, BUILD / "html", RECORD):          # nothing of an earlier build can pass for this one
        if stale.is_dir(): shutil.rmtree(stale)
        elif stale.exists(): stale.unlink()
    SRC.mkdir(parents=True)
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        if nb.name.startswith("_"):
            continue
        (SRC / nb.name).write_text(json.dumps(strip_nbdev(json.loads(nb.read_text())), indent=1))
    (SRC / "api.md").write_text(api_page())
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / "book" / f, SRC / f)
    shutil.copytree(ROOT / "book" / "css", SRC / "_css")
    mathjax(SRC / "_mathjax")
    if RUNS.exists():
        shutil.rmtree(RUNS)                           # every build runs the experiments afresh
    runs = execute([c for c in chapters() if (SRC / f"{c}.ipynb").exists()], SRC, jobs,
                   {k: v["seconds"] for k, v in previous.items()})
    RECORD.write_text(json.dumps(runs, indent=1))
    failed = sorted(k for k, v in runs.items() if not v["ok"])
    unprintable = audit(SRC / f"{c}.ipynb" for c in chapters() if (SRC / f"{c}.ipynb").exists())
    jb = Path(sys.executable).parent / "jupyter-book"
    res = subprocess.run([str(jb), "build", str(SRC), "--path-output", str(BUILD), "--warningiserror", "--keep-going"],
                         cwd=SRC, text=True, capture_output=True, env=kernel_env())
    print(res.stdout[-6000:], res.stderr[-6000:], sep="\n")
    html = BUILD / "_build" / "html"
    if failed:                                        # the book is still built, with the error on each failed chapter
        print(*(f"\n{k}.ipynb failed:\n{runs[k]['error']}" for k in failed), sep="\n", file=sys.stderr)
    if res.returncode != 0 or not (html / "index.html").exists():
        sys.exit(f"book build failed (exit {res.returncode})")
    drop_thebe(html)
    tables = ROOT / "out" / "tables"                 # the Markdown and LaTeX tables the results chapters wrote
    if tables.exists():
        shutil.copytree(tables, html / "out" / "tables", dirs_exist_ok=True)
    target = BUILD / "html"
    if target.exists():
        shutil.rmtree(target)
    shutil.move(str(html), str(target))
    print(f"book: {target / 'index.html'}")
    if unprintable:
        print("\nOutputs a textbook would not print:", *(f"  {c}, cell {i}: {w}" for c, i, w in unprintable),
              sep="\n", file=sys.stderr)
    if failed or unprintable:
        sys.exit(f"{len(failed)} chapter(s) failed to execute ({', '.join(failed) or 'none'}; the record: {RECORD}), "
                 f"{len(unprintable)} output(s) a textbook would not print")


def _positive(s):
    import argparse
    if not s.isdigit() or int(s) < 1: raise argparse.ArgumentTypeError(f"a whole number of 1 or more, not {s!r}")
    return int(s)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Build the book into _build/book/html.")
    ap.add_argument("--jobs", type=_positive, default=None, help="chapters executed at once (default: the cores)")
    ap.add_argument("--execute", type=Path, help=argparse.SUPPRESS)        # one notebook, in a process of its own
    a = ap.parse_args()
    execute_one(a.execute) if a.execute else main(a.jobs)
