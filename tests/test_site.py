"""The built site: clean build, no external assets, and it works in a real headless browser.

Reads the session's smoke book (built once, `conftest.smoke_book`), serves it from
127.0.0.1 and visits every page of the toc with Debian's chromium through
playwright. Needs `apt-get install chromium`; skipped without it.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

from ddrepro import chapters
from ddrepro.verdicts import OUTCOMES

from .conftest import REPO

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
EXTERNAL_ASSET = re.compile(r"<(script|link|img)\b[^>]*\b(src|href)=[\"'](https?:)?//", re.I)


@pytest.fixture(scope="module")
def site(smoke_book):
    """The session's smoke book (``conftest.smoke_book``: built once, shared with the notebook tests)."""
    return smoke_book


def test_book_builds_clean(site):
    build, done = site
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "site built with 0 warnings" in done.stdout
    assert (chapters.site_dir(build) / "index.html").is_file()


def test_no_external_script_link_or_img(site):
    build, _ = site
    offenders = {}
    for page in chapters.site_dir(build).rglob("*.html"):
        found = [m.group(0) for m in EXTERNAL_ASSET.finditer(page.read_text(errors="replace"))]
        if found:
            offenders[str(page)] = found[:3]
    assert not offenders


@pytest.fixture(scope="module")
def server(site):
    build, done = site
    assert done.returncode == 0, "the site did not build"
    handler = functools.partial(_QuietHandler, directory=str(chapters.site_dir(build)))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output readable
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium; `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium_profile")), executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS, headless=True, viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


def toc_urls(base: str) -> list[str]:
    return [f"{base}/{page.rel}.html" for page in chapters.pages(REPO)]


def visit(browser, url: str):
    """Load ``url``; return the page, its console errors and its requests off 127.0.0.1."""
    page = browser.new_page()
    errors: list[str] = []
    offsite: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: offsite.append(req.url)
            if urlparse(req.url).hostname not in ("127.0.0.1", None) and req.url.startswith("http") else None)
    page.on("response", lambda rsp: errors.append(f"HTTP {rsp.status} {rsp.url}") if rsp.status >= 400 else None)
    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.status == 200, url
    return page, errors, offsite


def test_every_toc_page_loads_without_console_errors_or_broken_images(browser, server):
    problems = {}
    for url in toc_urls(server):
        page, errors, offsite = visit(browser, url)
        broken = page.eval_on_selector_all(
            "img", "els => els.filter(e => !e.complete || e.naturalWidth === 0).map(e => e.src)")
        if errors or offsite or broken:
            problems[url] = {"console": errors, "offsite": offsite, "broken_img": broken}
        page.close()
    assert not problems


def test_mathjax_renders_from_the_build(browser, server):
    page, errors, offsite = visit(browser, f"{server}/book/02_privacy/index.html")
    page.wait_for_selector("mjx-container", timeout=30_000)
    assert page.locator("mjx-container").count() > 5
    assert not errors and not offsite
    page.close()


def test_data_page_shows_figures_and_glued_numbers(browser, server, tmp_path_factory):
    page, _, _ = visit(browser, f"{server}/book/data.html")
    assert page.locator("img").count() >= 2
    text = page.inner_text("main")
    assert "60000" in text and "10000" in text  # MNIST sizes glued from the loaded tensors
    shot = tmp_path_factory.mktemp("screenshots") / "data_page.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    page.close()


def test_every_internal_link_resolves(browser, server):
    links: set[str] = set()
    for url in toc_urls(server):
        page = browser.new_page()
        page.goto(url, wait_until="load")
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        links.update(urldefrag(h)[0] for h in hrefs if h.startswith(server))
        page.close()
    assert len(links) > 10
    broken = []
    for link in sorted(links):
        try:
            with urllib.request.urlopen(link, timeout=10) as reply:
                if reply.status != 200:
                    broken.append((link, reply.status))
        except urllib.error.HTTPError as err:
            broken.append((link, err.code))
    assert not broken


# ----------------------------------------------------------------------------- what a reader sees

SCREENSHOTS = Path(__file__).resolve().parent.parent / "_build" / "screenshots"


def chapter_urls(base: str) -> list[tuple[str, chapters.Page]]:
    return [(f"{base}/{page.rel}.html", page) for page in chapters.notebooks(REPO)]


SCORECARD_HEAD = ["claim", "paper", "ours", "interval", "detectable", "criterion", "verdict"]


def scorecard_rows(build: Path, page: chapters.Page) -> int:
    staged = page.staged(chapters.stage_dir(build))
    path = staged.with_name(staged.stem + ".scorecard.json")
    return len(json.loads(path.read_text())["rows"]) if path.is_file() else 0


def test_scorecards_are_tables_with_one_row_per_claim(browser, server, site):
    build, _ = site
    total = 0
    for url, page in chapter_urls(server):
        expected = scorecard_rows(build, page)
        total += expected
        if not expected:
            continue
        tab, _, _ = visit(browser, url)
        heads = tab.eval_on_selector_all(
            "main table", "ts => ts.map(t => [...t.querySelectorAll('thead th')].map(th => th.innerText.trim()))")
        cards = [i for i, h in enumerate(heads) if h == SCORECARD_HEAD]
        assert len(cards) == 1, (url, heads)
        verdicts = tab.eval_on_selector_all(
            "main table", f"ts => [...ts[{cards[0]}].querySelectorAll('tbody tr')].map(r => r.lastElementChild.innerText)")
        assert len(verdicts) == expected, url
        # only the five outcomes (a note may follow in brackets)
        assert all(any(v == o or v.startswith(o + " (") for o in OUTCOMES) for v in verdicts), (url, verdicts)
        tab.close()
    tab, _, _ = visit(browser, f"{server}/book/scorecard.html")
    counts = tab.eval_on_selector_all(
        "main table", "ts => ts.filter(t => [...t.querySelectorAll('thead th')].some(th => "
        "th.innerText.trim() === 'claim')).map(t => t.querySelectorAll('tbody tr').length)")
    assert counts == [total], counts
    # the book's table can be filtered and sorted, and each claim links to its page
    assert tab.locator("input.ddrepro-filter").count() == 1
    links = tab.eval_on_selector_all("table.ddrepro-sortable tbody td a", "as => as.map(a => a.href)")
    assert len(links) == total and all(".html" in h for h in links)
    tab.fill("input.ddrepro-filter", "no such claim anywhere")
    shown = tab.eval_on_selector_all("table.ddrepro-sortable tbody tr", "rs => rs.filter(r => r.style.display !== 'none').length")
    assert shown == 0
    tab.close()


def test_no_page_shows_pipe_table_text_parameter_cells_or_a_figure_twice(browser, server):
    pipe_row = re.compile(r"\|\s*-{3,}\s*\|")
    executed = {url for url, _ in chapter_urls(server)}
    for url in toc_urls(server):
        tab, _, _ = visit(browser, url)
        # the page's prose and outputs, not its code (a cell may build a markdown table in a string)
        text = tab.eval_on_selector("main", "m => { const c = m.cloneNode(true); "
                                            "c.querySelectorAll('pre').forEach(p => p.remove()); "
                                            "document.body.appendChild(c); const t = c.innerText; "
                                            "c.remove(); return t; }")
        assert not pipe_row.search(text) and "| claim |" not in text, f"raw pipe table on {url}"
        if url in executed:  # (the how-to page shows a parameters cell on purpose)
            code = " ".join(tab.eval_on_selector_all("main pre", "els => els.map(e => e.innerText)"))
            assert "# Parameters" not in code and "overrides = {" not in code, f"parameter cell on {url}"
        sources = tab.eval_on_selector_all("main img", "els => els.map(e => e.getAttribute('src'))")
        repeated = {s for s in sources if sources.count(s) > 1}
        assert not repeated, f"{url} shows the same figure twice: {repeated}"
        tab.close()


CELL_SHAPES = """cells => cells.map(cell => {
    const pre = cell.querySelector('.cell_input pre');
    const fold = cell.querySelector('details.above-input');
    return {lines: pre ? pre.textContent.replace(/\\n$/, '').split('\\n').length : 0,
            folded: fold !== null, open: fold ? fold.open : null};
})"""


def test_long_code_cells_fold_behind_a_closed_toggle(browser, server):
    from ddrepro.runner import FOLD_LINES

    folded = 0
    for url, _ in chapter_urls(server):
        tab, _, _ = visit(browser, url)
        cells = tab.eval_on_selector_all("main div.cell", CELL_SHAPES)
        long_open = [c["lines"] for c in cells if c["lines"] > FOLD_LINES and not c["folded"]]
        assert not long_open, f"{url}: code cells of {long_open} lines are not folded"
        assert all(c["open"] is False for c in cells if c["folded"]), f"{url}: a fold starts open"
        if any(c["folded"] for c in cells) and not folded:
            tab.click("main details.above-input > summary")   # the reader can open it
            assert tab.eval_on_selector("main details.above-input", "d => d.open")
        folded += sum(c["folded"] for c in cells)
        tab.close()
    assert folded, "no code cell folded anywhere: the fold is not reaching the site"


def test_figures_are_large_enough_to_read_and_screenshots_are_kept(browser, server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for url, page in chapter_urls(server):
        tab, _, _ = visit(browser, url)
        widths = tab.eval_on_selector_all("main img", "els => els.map(e => e.getBoundingClientRect().width)")
        column = tab.eval_on_selector("main", "m => m.getBoundingClientRect().width")
        small = [w for w in widths if w < min(400, 0.5 * column)]
        assert not small, f"{url}: figures rendered {small} px wide in a {column:.0f} px column"
        tab.screenshot(path=str(SCREENSHOTS / f"{page.rel.replace('/', '_')}.png"), full_page=True)
        tab.close()


NUMBERING = """main => ({
    figures: [...main.querySelectorAll('figure')].map(f => f.querySelector('.caption-number') !== null),
    equations: [...main.querySelectorAll('div.math')].map(d => d.querySelector('.eqno') !== null),
    // a block past the column's right edge, unless a box inside the column scrolls or clips it
    past: [...main.querySelectorAll('div.math, div.cell_input, div.cell_output, table')].filter(e => {
        const right = main.getBoundingClientRect().right + 1;
        if (e.getBoundingClientRect().right <= right) return false;
        for (let a = e.parentElement; a && a !== main; a = a.parentElement) {
            const overflow = getComputedStyle(a).overflowX;
            if (overflow !== 'visible' && a.getBoundingClientRect().right <= right) return false;
        }
        return true;
    }).length,
})"""


def test_figures_and_equations_are_numbered_and_nothing_runs_past_the_column(browser, server):
    figures = equations = 0
    for url in toc_urls(server):
        tab, _, _ = visit(browser, url)
        found = tab.eval_on_selector("main", NUMBERING)
        assert all(found["figures"]), f"{url}: a figure without a number"
        assert all(found["equations"]), f"{url}: a display equation without a number"
        assert found["past"] == 0, f"{url}: {found['past']} block(s) run past the text column"
        figures, equations = figures + len(found["figures"]), equations + len(found["equations"])
        tab.close()
    assert figures and equations


def test_chapter_indexes_open_with_the_papers_claim_and_what_the_run_found(browser, server):
    indexes = [page for page in chapters.notebooks(REPO) if page.stem == "index"]
    assert len(indexes) >= 5
    for page in indexes:
        tab, _, _ = visit(browser, f"{server}/{page.rel}.html")
        box = tab.locator("main div.admonition").first.inner_text()
        assert "The paper." in box and "What we found." in box, page.rel
        found = box.split("What we found.", 1)[1].strip()
        assert found.startswith("Measured at smoke") or "has recorded" in found, (page.rel, found)
        tab.close()
