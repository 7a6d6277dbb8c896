"""Build the book and read it in headless Chromium as a reader would: every chapter loads, its math is typeset,
its figures load, nothing is requested from outside the book, and no JavaScript error occurs."""
import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "book" / "html"
SHOTS = ROOT / "_build" / "book" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chapters():
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]


@pytest.fixture(scope="module")
def book():
    res = subprocess.run([sys.executable, str(ROOT / "book" / "build.py")], cwd=ROOT, capture_output=True, text=True,
                         timeout=1500)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-5000:]
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    handler = functools.partial(Quiet, directory=str(HTML))
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
