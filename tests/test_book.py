"""Read the test run's one build of the book (conftest.built_book) in headless Chromium as a reader would: every
chapter loads, its math is typeset, its figures load, nothing is requested from outside the book, and no JavaScript
error occurs; and the build executed every chapter, each without error."""
import functools
import json
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
        # Scroll bars are shown, as a reader's browser shows them (headless Chromium hides them by default).
        b = p.chromium.launch(executable_path=CHROMIUM, ignore_default_args=["--hide-scrollbars"], args=[
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
SIDEWAYS = """() => Array.from(document.querySelectorAll('article pre, article div.math'))
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => [e.scrollWidth - e.clientWidth, (e.innerText || '').split('\\n')[0].slice(0, 80)])"""

# Figures are PNGs at 100 dpi (8 pt text is 11.1 px in the file): shown at less than 0.81 of their size, it reads
# under 9 px. Every figure's text is 8 pt or more (tests/test_notebooks.py), so this bounds every label on screen.
SHRUNK = """() => Array.from(document.querySelectorAll('article img'))
  .filter(i => i.naturalWidth > 0 && i.clientWidth / i.naturalWidth < 0.81)
  .map(i => [Math.round(100 * i.clientWidth / i.naturalWidth) / 100, i.currentSrc.split('/').pop().slice(0, 16)])"""

# Content a reader cannot see: a box that hides what overflows it (overflow hidden or clip) while its content is wider,
# or an element that sticks out of the window sideways with no box around it that scrolls. A folded cell is skipped.
CLIPPED = """() => {
  const article = document.querySelector('article') || document.body, width = document.documentElement.clientWidth;
  const scrolls = e => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX; if (o === 'auto' || o === 'scroll') return true; } return false; };
  const out = [];
  for (const e of article.querySelectorAll('*')) {
    if (e.closest('details:not([open]), mjx-assistive-mml') || e.ownerSVGElement) continue;
    const s = getComputedStyle(e);
    if (s.display === 'none' || s.visibility === 'hidden') continue;
    const label = e.tagName.toLowerCase() + (e.className && e.className.baseVal === undefined ? '.' + e.className : '')
      + ': ' + (e.innerText || e.textContent || '').trim().split('\\n')[0].slice(0, 50);
    if (['hidden', 'clip'].includes(s.overflowX) && e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1)
      out.push('cut by ' + (e.scrollWidth - e.clientWidth) + ' px: ' + label);
    const r = e.getBoundingClientRect();
    if (['auto', 'scroll'].includes(s.overflowX) && e.scrollLeft === 0)       // what a scroll box cannot reach
      for (const c of e.children) {
        const left = c.getBoundingClientRect();
        if (left.width > 0 && left.left < r.left - 1)
          out.push('out of reach left of its scroll box by ' + Math.round(r.left - left.left) + ' px: ' + label);
      }
    if (r.width > 0 && (r.right > width + 1 || r.left < -1) && !scrolls(e))
      out.push('off the window by ' + Math.round(Math.max(r.right - width, -r.left)) + ' px: ' + label);
  }
  return out.slice(0, 12);
}"""

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


@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("chapter", chapters())
def test_chapter_reads_as_a_reader_would(book, browser, chapter, width):
    "Every page at a desktop's width and at a phone's (390 px): typeset, whole, nothing clipped, nothing from outside."
    page = browser.new_page(viewport={"width": width, "height": 900})
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
    clipped = page.evaluate(CLIPPED)
    assert not clipped, f"content clipped at {width} px: {clipped}"
    shrunk = page.evaluate(SHRUNK)                 # on a phone, a figure keeps its size and scrolls sideways
    assert not shrunk, f"figures shrunk so far that 8 pt text is under 9 px on screen (scale, image): {shrunk}"
    if width >= 1280:                  # on a phone, code, equations and tables scroll inside their boxes instead
        sideways = page.evaluate(SIDEWAYS)
        assert not sideways, f"boxes that scroll sideways at 1280 px (overflow in px, first line): {sideways}"
    spilling = page.evaluate(SPILLING_CELLS)
    assert not spilling, f"table cells whose text spills over their neighbours: {spilling}"
    printed = page.evaluate(PRINTED_TABLES)
    assert not printed, f"tables printed as Markdown or LaTeX text instead of HTML tables: {printed}"
    assert page.locator(".output.stderr, .stderr").count() == 0, "stderr output on the page"
    assert not outside, f"requests leaving the book: {outside}"
    assert not errors, f"JavaScript errors: {errors}"
    assert not re.search(r"Traceback \(most recent call last\)", page.inner_text("body")), "an executed cell failed"
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = str(SHOTS / (f"{chapter}.png" if width == 1280 else f"{chapter}-{width}.png"))
    height = page.evaluate("() => document.documentElement.scrollHeight")
    if height <= 16000:                # a window as tall as the page: its scroll bars are drawn, as a reader sees them
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=shot)
    else:                              # (a full-page capture hides them; it is kept for the few very long pages)
        page.screenshot(path=shot, full_page=True)
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
    assert "A constant." not in text and "\\|" not in text          # no stub, no escape shown as it is
    assert "Phi(Phi^-1(p_a) - ||delta||/sigma)" in text               # the docstring's | as written


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


@pytest.mark.parametrize("chapter, saved", [("results_paper", 2), ("appendix_e", 2)])
def test_tables_link_their_markdown_and_latex_files(book, browser, chapter, saved):
    "The results chapters' tables are HTML tables with their Markdown and LaTeX exports one click away (Table 1 and"
    " CIFAR-10's envelope in the results chapter, Appendix E's two on its page)."
    page = browser.new_page()
    page.goto(f"{book}/{chapter}.html")
    tables = page.locator("article table.rs-table").count()
    links = page.evaluate("() => Array.from(document.querySelectorAll('a[href^=\"out/tables/\"]')).map(a => a.href)")
    responses = [page.request.get(url) for url in links]
    texts = [(u, r.ok, r.text() if r.ok else "") for u, r in zip(links, responses)]
    page.close()
    assert tables >= saved and len(links) == 2 * saved
    assert all(ok for _, ok, _ in texts), [u for u, ok, _ in texts if not ok]
    tex = [t for u, _, t in texts if u.endswith(".tex")]
    assert tex and all(t.startswith("\\begin{tabular}") for t in tex)
    md = [t for u, _, t in texts if u.endswith(".md")]
    assert any("| 0.50 |" in t for t in md)


def test_the_api_page_covers_every_module():
    "Every module of the package has its section in the API reference (a new module is not forgotten)."
    modules = {p.stem for p in (ROOT / "randsmooth").glob("*.py") if not p.stem.startswith("_")}
    assert modules == set(book_build.MODULES)


def test_every_public_name_says_what_it_is():
    "The API page gives each exported name a sentence of its own; the build stops, naming it, when one has none."
    assert book_build.undocumented() == []
    import randsmooth.wong as wong
    comment = book_build._comment
    try:
        book_build._comment = lambda module, name: "" if name == "WONG_FORMAT" else comment(module, name)
        assert book_build.undocumented() == ["randsmooth.wong.WONG_FORMAT"]
        with pytest.raises(ValueError, match="randsmooth.wong.WONG_FORMAT"): book_build.api_page()
    finally:
        book_build._comment = comment
    assert wong.WONG_FORMAT


def _notebook(tmp_path, name, *outputs):
    "An executed notebook of one code cell with these outputs."
    nb = {"cells": [{"cell_type": "code", "source": "x", "metadata": {}, "outputs": list(outputs)}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / f"{name}.ipynb").write_text(json.dumps(nb))
    return tmp_path / f"{name}.ipynb"


def test_the_build_refuses_outputs_a_textbook_would_not_print(tmp_path):
    "NumPy scalar reprs, the building machine's paths, walls of lines and a figure drawn twice are each found, by"
    " chapter and cell; rounded numbers, relative paths, HTML tables and distinct figures pass."
    text = lambda t: {"output_type": "stream", "name": "stdout", "text": t}
    result = lambda t: {"output_type": "execute_result", "data": {"text/plain": t}, "metadata": {}}
    png = lambda b: {"output_type": "display_data", "data": {"image/png": b}, "metadata": {}}
    clean = _notebook(tmp_path, "clean", result("(0.3111, 218105)"), text("results/certify/run.tsv\n"),
                      png("AAAA"), {"output_type": "execute_result", "metadata": {},
                                    "data": {"text/html": "<table>" + "<tr></tr>\n" * 50, "text/plain": "x"}})
    assert book_build.audit([clean]) == []
    bad = [_notebook(tmp_path, "a", result("np.float64(0.3110532269907861)")),
           _notebook(tmp_path, "b", result("(3.8, np.int64(218105))")),
           _notebook(tmp_path, "c", text(f"wrote {ROOT}/_build/book/runs/x.tsv\n")),
           _notebook(tmp_path, "d", text("repaired /tmp/tmpezvxcnsm/certify/x.tsv\n")),
           _notebook(tmp_path, "e", text("done certify\n" * 35)),
           _notebook(tmp_path, "f", png("AAAA"))]
    found = book_build.audit([clean, *bad])
    assert [c for c, _, _ in found] == ["a", "b", "c", "d", "e", "f"], found
    assert "draws the figure clean cell 0 drew" in found[-1][2]


# The lines of code a reader sees without opening anything: folded cells (hide-input) and closed toggles do not count.
VISIBLE_CODE = """() => Array.from(document.querySelectorAll('article .cell_input pre'))
  .filter(e => !e.closest('details:not([open])') && e.offsetParent !== null)
  .map(e => e.innerText.replace(/\\n+$/, '').split('\\n').length).reduce((a, b) => a + b, 0)"""


def paper_chapters():
    "The chapters of the paper's parts (Sections 1 to 5 and the appendices): every part before 'Beyond the paper'."
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    captions = [p["caption"] for p in toc["parts"]]
    return {c["file"]: p["caption"] for p in toc["parts"][:captions.index("Beyond the paper")] for c in p["chapters"]}


def test_the_paper_part_shows_the_argument_before_the_plumbing(book, browser):
    "Per chapter of the paper's part, the code a reader sees without expanding anything, written to"
    " _build/book/code_lines.json; PREDICT and CERTIFY's chapter (Section 3.2) shows under 150 lines, training's"
    " (Section 3.3) under 100, and each chapter folds what it does not need to show."
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    lines = {}
    for chapter, part in paper_chapters().items():
        page.goto(f"{book}/{chapter}.html")
        lines[chapter] = {"part": part, "visible code lines": page.evaluate(VISIBLE_CODE)}
    page.close()
    (ROOT / "_build" / "book" / "code_lines.json").write_text(json.dumps(lines, indent=1))
    assert lines["03_core"]["visible code lines"] < 150, lines["03_core"]
    assert lines["06_train"]["visible code lines"] < 100, lines["06_train"]
    assert lines["01_stats"]["visible code lines"] < 200, lines["01_stats"]
