"""Read the test run's one build of the book (conftest.built_book) in headless Chromium as a reader would: every
chapter loads, its math is typeset, its figures load, nothing is requested from outside the book, and no JavaScript
error occurs; and the build executed every chapter, each without error."""
import functools
import http.server
import re
import shutil
import threading
from pathlib import Path

import pytest
import yaml

from helpers import book_build

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "_build" / "book" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


chapters = book_build.chapters


# One worker of pytest-xdist runs every test that reads the build (conftest.BOOK_TESTS): the book is built once.
pytestmark = pytest.mark.book


@pytest.fixture(scope="module")
def book(built_book):
    "The book built once for the whole test run (conftest.py), served on a local port. A chapter that failed to"
    " execute is still built, with its error on its page: its own test in test_notebooks.py says which cell failed."
    assert (built_book.html / "index.html").exists(), built_book.output
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    handler = functools.partial(Quiet, directory=str(built_book.html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


READ_TEXT = """() => {
  const clone = document.querySelector('main, article, body').cloneNode(true);
  clone.querySelectorAll('pre, code, mjx-container, script, style, .highlight').forEach(e => e.remove());
  return clone.innerText;
}"""


ALL_TEXT = """() => {
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll('pre, code, mjx-container, script, style, .highlight').forEach(e => e.remove());
  return clone.innerText;
}"""


# Code, printed output and display math that scroll sideways: each such box with its overflow and its first line.
SIDEWAYS = """() => Array.from(document.querySelectorAll('article pre, article mjx-container[display="true"]'))
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => [e.scrollWidth - e.clientWidth, (e.innerText || '').split('\\n')[0].slice(0, 80)])"""

# Figures are PNGs at 100 dpi (8 pt text is 11.1 px in the file): shown at less than 0.81 of their size, it reads
# under 9 px. Every figure's text is 8 pt or more (tests/test_notebooks.py), so this bounds every label on screen.
SHRUNK = """() => Array.from(document.querySelectorAll('article img'))
  .filter(i => i.naturalWidth > 0 && i.clientWidth / i.naturalWidth < 0.81)
  .map(i => [Math.round(100 * i.clientWidth / i.naturalWidth) / 100, i.currentSrc.split('/').pop().slice(0, 16)])"""

# A Markdown table (a header row and its |---| rule) or a LaTeX tabular printed into a cell's output.
PRINTED_TABLES = """() => Array.from(document.querySelectorAll('.cell_output pre, .output pre'))
  .map(e => e.innerText)
  .filter(t => /^\\|.*\\|\\s*\\n\\|[-:| ]+\\|/m.test(t) || t.includes('\\\\begin{tabular}'))
  .map(t => t.slice(0, 80))"""

# A table cell whose text spills over its neighbours (a row label wider than its column, kept on one line).
SPILLING_CELLS = """() => Array.from(document.querySelectorAll('article table td, article table th'))
  .filter(c => c.scrollWidth > c.clientWidth + 1)
  .map(c => c.innerText.slice(0, 60))"""


def test_the_build_executed_every_chapter_without_error(built_book):
    "Each notebook of the table of contents was executed for this build (the experiment notebooks with papermill),"
    " once, with no error, and the build said so by its exit status."
    notebooks = [c for c in chapters() if (ROOT / "nbs" / f"{c}.ipynb").exists()]
    assert sorted(built_book.runs) == sorted(notebooks), set(built_book.runs) ^ set(notebooks)
    failed = {k: v["error"][-2000:] for k, v in built_book.runs.items() if not v["ok"]}
    assert not failed, failed
    assert built_book.returncode == 0, built_book.output


@pytest.mark.parametrize("chapter", chapters())
def test_chapter_reads_as_a_reader_would(book, browser, chapter):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside, errors = [], []
    host = book.split("//")[1]

    def route(r):
        if r.request.url.split("//", 1)[-1].split("/", 1)[0] != host and not r.request.url.startswith("data:"):
            outside.append(r.request.url)
            return r.abort()
        return r.continue_()

    page.route("**/*", route)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    resp = page.goto(f"{book}/{chapter}.html", wait_until="load")
    assert resp is not None and resp.ok, f"{chapter}.html did not load"
    if page.evaluate("() => !!window.MathJax"):
        page.wait_for_function("() => window.MathJax && window.MathJax.startup && window.MathJax.startup.promise", timeout=30000)
        page.evaluate("() => MathJax.startup.promise")
    page.wait_for_load_state("networkidle")
    text = page.evaluate(READ_TEXT)
    assert "$$" not in text and "\\Phi" not in text and "\\sigma" not in text, "untypeset math left on the page"
    math_errors = page.evaluate("() => Array.from(document.querySelectorAll('mjx-merror, [data-mjx-error]'))"
                                ".map(e => e.getAttribute('data-mjx-error') || e.textContent)")
    assert not math_errors, f"MathJax errors on the page: {math_errors}"
    everything = page.evaluate(ALL_TEXT)                              # the navigation and the page, code aside
    for raw in ("\\(", "\\)", "$$", "not allowed", "Undefined control sequence"):
        assert raw not in everything, f"{raw!r} on the page: math that was not typeset, or a TeX error"
    if chapter in ("index", "01_stats", "02_theory", "03_core"):
        assert page.locator("mjx-container").count() > 5, "no typeset math"
    images = page.evaluate("() => Array.from(document.images).map(i => [i.currentSrc, i.complete, i.naturalWidth])")
    assert all(ok and w > 0 for _, ok, w in images), [src for src, ok, w in images if not (ok and w > 0)]
    sideways = page.evaluate(SIDEWAYS)
    assert not sideways, f"boxes that scroll sideways at 1280 px (overflow in px, first line): {sideways}"
    shrunk = page.evaluate(SHRUNK)
    assert not shrunk, f"figures shrunk so far that 8 pt text is under 9 px on screen (scale, image): {shrunk}"
    spilling = page.evaluate(SPILLING_CELLS)
    assert not spilling, f"table cells whose text spills over their neighbours: {spilling}"
    printed = page.evaluate(PRINTED_TABLES)
    assert not printed, f"tables printed as Markdown or LaTeX text instead of HTML tables: {printed}"
    assert page.locator(".output.stderr, .stderr").count() == 0, "stderr output on the page"
    assert not outside, f"requests leaving the book: {outside}"
    assert not errors, f"JavaScript errors: {errors}"
    assert not re.search(r"Traceback \(most recent call last\)", page.inner_text("body")), "an executed cell failed"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{chapter}.png"), full_page=True)
    page.close()


def test_the_api_page_shows_constants_as_constants(book, browser):
    "ABSTAIN, DATASETS, ... are values, not functions with the docstrings of Python's int and dict."
    page = browser.new_page()
    page.goto(f"{book}/api.html")
    text = page.inner_text("body")
    page.close()
    assert "ABSTAIN = -1" in text and "CERTIFY_COLUMNS = [" in text
    for builtin_doc in ("int([x]) -> integer", "dict() -> new empty dictionary", "function ABSTAIN"):
        assert builtin_doc not in text, builtin_doc


def test_figures_of_the_paper_appear(book, browser):
    "The chapters that regenerate the paper's figures show them as images."
    page = browser.new_page()
    counts = {}
    for chapter in ("02_theory", "02a_bounds", "results_paper", "results_noise", "results_predict", "results_mnist"):
        page.goto(f"{book}/{chapter}.html")
        counts[chapter] = page.evaluate("() => document.querySelectorAll('img').length")
    page.close()
    assert all(v >= 1 for v in counts.values()), counts
    assert counts["results_paper"] >= 2 and counts["results_noise"] >= 2


def test_the_index_lists_the_chapters_of_the_table_of_contents(book, browser):
    "The index's chapter list and the sidebar both come from book/_toc.yml: same chapters, same order."
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{book}/index.html")
    listed = page.evaluate("() => Array.from(document.querySelectorAll('article .toctree-wrapper a.reference.internal'))"
                           ".map(a => a.getAttribute('href').split('#')[0].replace('.html', ''))")
    sidebar = page.evaluate("() => Array.from(document.querySelectorAll('.bd-sidebar-primary a.reference.internal'))"
                            ".map(a => a.getAttribute('href').split('#')[0].replace('.html', ''))")
    parts = page.evaluate("() => Array.from(document.querySelectorAll('article .toctree-wrapper p.caption'))"
                          ".map(p => p.innerText.trim())")
    page.close()
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    test_order = chapters()[1:]
    assert listed == test_order and [c for c in sidebar if c != "#"][-len(test_order):] == test_order, (listed, sidebar)
    assert parts == [p["caption"] for p in toc["parts"]]
    assert parts[-1] == "The library"


@pytest.mark.parametrize("chapter, shows", [("train", ["epochs = 10", "test_acc"]),
                                            ("certify", ["progress = False", "certified accuracy at radius"]),
                                            ("predict", ["progress = False", "accuracy", "abstained"])])
def test_experiment_pages_show_the_run_they_describe(book, browser, chapter, shows):
    "train, certify and predict are executed for the book with small parameters, shown in the cell papermill adds."
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{book}/{chapter}.html")
    text = page.inner_text("article")
    code_cells = page.locator("article .cell:has(.cell_input)").count()
    silent = page.evaluate("() => Array.from(document.querySelectorAll('article .cell:has(.cell_input)'))"
                           ".filter(c => !c.querySelector('.cell_output'))"
                           ".map(c => c.querySelector('.cell_input').innerText.split('\\n')[0])")
    figures = page.locator("article .cell_output img").count()
    page.close()
    assert all(s in text for s in shows), [s for s in shows if s not in text]
    # Only the cells that set parameters or import may be silent; every cell that runs, reads or plots shows output.
    assert all(line.startswith(("dataset =", "# Parameters", "import", "from")) for line in silent), silent
    assert code_cells >= 4 and len(silent) < code_cells
    assert figures >= (0 if chapter == "predict" else 1)


def test_tables_link_their_markdown_and_latex_files(book, browser):
    "The results chapters' tables are HTML tables with their Markdown and LaTeX exports one click away."
    page = browser.new_page()
    page.goto(f"{book}/results_paper.html")
    tables = page.locator("article table.rs-table").count()
    links = page.evaluate("() => Array.from(document.querySelectorAll('a[href^=\"out/tables/\"]')).map(a => a.href)")
    responses = [page.request.get(url) for url in links]
    texts = [(u, r.ok, r.text() if r.ok else "") for u, r in zip(links, responses)]
    page.close()
    assert tables >= 6 and len(links) == 2 * 4      # Table 1, CIFAR-10's envelope, Appendix E twice
    assert all(ok for _, ok, _ in texts), [u for u, ok, _ in texts if not ok]
    tex = [t for u, _, t in texts if u.endswith(".tex")]
    assert tex and all(t.startswith("\\begin{tabular}") for t in tex)
    md = [t for u, _, t in texts if u.endswith(".md")]
    assert any("| 0.50 |" in t for t in md)


def test_the_api_page_covers_every_module():
    "Every module of the package has its section in the API reference (a new module is not forgotten)."
    modules = {p.stem for p in (ROOT / "randsmooth").glob("*.py") if not p.stem.startswith("_")}
    assert modules == set(book_build.MODULES)
