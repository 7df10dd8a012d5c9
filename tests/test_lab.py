"""``ddrepro lab``: what it sets up in the environment, and JupyterLab itself in a real browser.

The fast tests check the set-up in temporary folders. The slow ones start the
server exactly as ``bash tools/dev.sh lab`` does (``python -m ddrepro lab``),
on a free port of 127.0.0.1 with token auth, a fresh root holding a copy of
``book/``, a fresh ``$DDREPRO_CACHE`` and Jupyter's per-user folders moved
into the temporary directory (so neither the user's settings nor a kernel
registered in ``~`` can make them pass). They drive Debian's chromium through
playwright as tests/test_site.py does, and run a chapter through the server's
own kernel. The server and its kernels are stopped by the fixture's finaliser,
also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ddrepro import chapters, lab

from .conftest import REPO, run_ddrepro
from .test_site import CHROMIUM, CHROMIUM_ARGS

SMOKE_CHAPTER = "does_it_work"  # the chapter executed through the server's kernel
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook tab in front
# A chapter's outputs are tables, figures and summaries: a few kB of text at smoke.
# Bar redraws or a training log kept in the page would be orders of magnitude more.
MAX_OUTPUT_CHARS = 100_000


# --------------------------------------------------------------------------- set-up (fast)

def test_chapters_declare_the_kernel_that_lab_registers():
    for page in chapters.notebooks(REPO):
        spec = chapters.notebook_source(page.source)["metadata"]["kernelspec"]
        assert (spec["name"], spec["display_name"]) == (lab.KERNEL_NAME, lab.KERNEL_DISPLAY_NAME), page.rel


def test_install_kernel_registers_this_interpreter_under_a_prefix(tmp_path):
    path = lab.install_kernel(tmp_path)
    assert path == tmp_path / "share" / "jupyter" / "kernels" / lab.KERNEL_NAME
    spec = json.loads((path / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable and spec["display_name"] == lab.KERNEL_DISPLAY_NAME
    assert lab.install_kernel(tmp_path) == path  # again: replaced in place


def test_lab_settings_open_markdown_with_jupytext_and_are_idempotent(tmp_path):
    target = lab.write_lab_settings(tmp_path)
    assert target == tmp_path / "settings" / "overrides.d" / "ddrepro.json"
    viewers = json.loads(target.read_text())["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == lab.JUPYTEXT_VIEWER
    stamp = target.stat().st_mtime_ns
    time.sleep(0.01)
    lab.write_lab_settings(tmp_path)
    assert target.stat().st_mtime_ns == stamp, "unchanged settings are not rewritten"


def test_the_viewer_name_is_the_one_jupytexts_lab_extension_registers():
    pytest.importorskip("jupyterlab")
    bundle = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "jupyterlab-jupytext" / "static"
    if not bundle.is_dir():
        pytest.skip(f"jupytext's lab extension is not installed under {bundle}")
    sources = "".join(p.read_text(errors="replace") for p in bundle.glob("*.js"))
    assert f'FACTORY="{lab.JUPYTEXT_VIEWER}"' in sources


def test_server_command_binds_localhost_and_lets_passed_options_win(tmp_path):
    command = lab.server_command(tmp_path, ["--no-browser"])
    assert command[:3] == [sys.executable, "-m", "jupyterlab"] and command[-1] == "--no-browser"
    assert "--ServerApp.ip=127.0.0.1" in command
    assert f"--ServerApp.root_dir={tmp_path}" in command
    mine = lab.server_command(tmp_path, ["--ServerApp.root_dir=/elsewhere", "--ip", "0.0.0.0"])
    assert not [a for a in mine if a.startswith(("--ServerApp.root_dir=" + str(tmp_path), "--ServerApp.ip"))]


def test_server_command_allows_root_only_as_root(tmp_path):
    # Jupyter refuses to start as root without --allow-root (containers, CI run as root)
    assert "--allow-root" in lab.server_command(tmp_path, as_root=True)
    assert "--allow-root" not in lab.server_command(tmp_path, as_root=False)
    assert lab.server_command(tmp_path, ["--allow-root"], as_root=True).count("--allow-root") == 1


def test_lab_options_reach_jupyter_but_other_commands_stay_strict(capsys, monkeypatch):
    from ddrepro import cli

    seen = {}
    monkeypatch.setattr(lab, "main", lambda root, extra, setup_only: seen.update(
        root=root, extra=list(extra), setup_only=setup_only) or 0)
    assert cli.main(["lab", "--no-browser", "--port", "8890", "--ServerApp.token=x"]) == 0
    assert seen == {"root": REPO, "extra": ["--no-browser", "--port", "8890", "--ServerApp.token=x"],
                    "setup_only": False}
    assert cli.main(["data", "status", "--no-browser"]) == 2
    assert "unrecognized arguments: --no-browser" in capsys.readouterr().err


def test_the_readme_and_dev_sh_offer_the_same_three_commands():
    readme = set(re.findall(r"^\s*bash tools/dev\.sh (\w+)\s*$", (REPO / "README.md").read_text(), re.M))
    script = (REPO / "tools" / "dev.sh").read_text()
    branches = set(re.findall(r"^  (\w+)\)$", script, re.M))
    usage = re.search(r"usage: bash tools/dev\.sh ([\w|]+)", script).group(1).split("|")
    assert readme == branches == set(usage) and "lab" in readme, (readme, branches, usage)


# --------------------------------------------------------------------------- the server (slow)

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM the server's group (it shuts its kernels down), then SIGKILL whatever is left."""
    import psutil

    try:
        family = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=20)
    for proc in alive:  # kernels run in sessions of their own, outside the server's group
        proc.kill()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory, book_data):
    """``python -m ddrepro lab`` on a free port; yields (base URL, token, root, env, log)."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    shutil.copytree(REPO / "book", root / "book",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "_build"))
    page = chapters.resolve_chapter(SMOKE_CHAPTER, REPO)
    text = page.source.read_text()
    assert text.count('profile = "cpu"') == 1, "the parameters cell sets the profile once"
    smoke = root / page.source.relative_to(REPO).with_name(f"{page.stem}_smoke.md")
    smoke.write_text(text.replace('profile = "cpu"', 'profile = "smoke"'))
    env = {k: v for k, v in os.environ.items()
           if k not in ("DDREPRO_STAGE", "DDREPRO_QUIET", "DDREPRO_SCORECARD")}  # an interactive kernel
    env.update(DDREPRO_CACHE=str(tmp / "cache"), PYTHONUNBUFFERED="1",
               **{name: str(tmp / name.lower()) for name in (
                   "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                   "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR")})
    port = _free_port()
    log_path = tmp / "server.log"
    command = [sys.executable, "-m", "ddrepro", "lab", "--no-browser", f"--port={port}",
               "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}"]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        url = re.compile(rf"http://127\.0\.0\.1:{port}{re.escape(lab.BOOK_URL)}\?token=(\w+)")
        deadline = time.monotonic() + 120
        while not (found := url.search(log_path.read_text(errors="replace"))):
            assert server.poll() is None, f"ddrepro lab exited:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no URL printed:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", found.group(1), root, env, log_path
    finally:
        _stop(server)


def _api(lab_server, path: str):
    base, token, *_ = lab_server
    request = urllib.request.Request(f"{base}/api/{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="module")
def lab_page(lab_server, tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium; `apt-get install -y chromium`")
    from playwright.sync_api import sync_playwright

    base, token, *_ = lab_server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}{lab.BOOK_URL}?token={token}")  # the URL ddrepro lab printed
        page.wait_for_selector(".jp-DirListing-item", timeout=90_000)
        yield page
        browser.close()


def _screenshot(page, name: str, tmp_path_factory) -> Path:
    shot = tmp_path_factory.getbasetemp() / "lab_screenshots" / f"{name}.png"
    shot.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    return shot


def _item(page, name: str):
    """The file browser's row for ``name`` (exact text)."""
    return page.locator(".jp-DirListing-item", has=page.get_by_text(name, exact=True))


def _listing(page) -> list[str]:
    return page.eval_on_selector_all(".jp-DirListing-item .jp-DirListing-itemText",
                                     "els => els.map(e => e.textContent)")


@pytest.mark.slow
def test_the_server_offers_this_environment_as_the_ddrepro_kernel(lab_server):
    specs = _api(lab_server, "kernelspecs")["kernelspecs"]
    assert lab.KERNEL_NAME in specs, list(specs)
    spec = specs[lab.KERNEL_NAME]["spec"]
    assert spec["argv"][0] == sys.executable and spec["display_name"] == lab.KERNEL_DISPLAY_NAME


@pytest.mark.slow
def test_the_book_folder_lists_every_chapter_and_serves_it_as_a_notebook(lab_server, lab_page,
                                                                         tmp_path_factory):
    page = lab_page
    assert page.inner_text(".jp-FileBrowser-crumbs").strip().strip("/").strip() == "book"
    shown = _listing(page)
    for chapter in chapters.notebooks(REPO):
        rel = chapter.source.relative_to(REPO / "book")
        assert rel.parts[0] in shown, f"{rel} not listed in book/: {shown}"
        model = _api(lab_server, f"contents/book/{rel.as_posix()}")  # jupytext's contents manager
        assert model["type"] == "notebook", rel
        assert model["content"]["metadata"]["kernelspec"]["name"] == lab.KERNEL_NAME
    _screenshot(page, "1_book_folder", tmp_path_factory)


@pytest.mark.slow
def test_a_chapter_opens_with_the_ddrepro_kernel_and_runs_at_smoke_from_the_shared_cache(
        lab_server, lab_page, tmp_path_factory):
    """Double click -> notebook on the ddrepro kernel; Run All in that kernel, no error output.

    ``ddrepro run`` fills the temporary cache first; the run in JupyterLab must
    then find every artifact there and add none (same keys in both kernels).
    """
    base, token, root, env, log_path = lab_server
    page = lab_page
    batch = run_ddrepro("run", SMOKE_CHAPTER, "--profile", "smoke", "--quiet", "--build-dir",
                        str(root.parent / "build"), env={"DDREPRO_CACHE": env["DDREPRO_CACHE"]})
    assert batch.returncode == 0, batch.stderr[-3000:]
    cache = Path(env["DDREPRO_CACHE"])
    before = sorted(p.relative_to(cache) for p in cache.rglob("*.pt"))
    assert before, "the batch run cached nothing"

    smoke = next(root.rglob(f"{SMOKE_CHAPTER}_smoke.md")).relative_to(root / "book")
    for folder in smoke.parent.parts:
        _item(page, folder).dblclick()
    _item(page, smoke.name).dblclick()  # opens with the default viewer for .md
    page.wait_for_selector(f"{NOTEBOOK} .jp-CodeCell", timeout=60_000)
    kernel = page.locator(f"{NOTEBOOK} .jp-KernelName")
    kernel.filter(has_text=lab.KERNEL_DISPLAY_NAME).wait_for(timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    deadline = time.monotonic() + 30  # the label can show before the server lists the session
    while not (sessions := [s for s in _api(lab_server, "sessions") if s["path"].endswith(smoke.name)]) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [s["kernel"]["name"] for s in sessions] == [lab.KERNEL_NAME]
    _screenshot(page, "2_chapter_open", tmp_path_factory)

    # Bars close when their loop ends (leave=False): note any widget bar ever drawn.
    page.evaluate("""() => { window.sawWidgetBar = false;
        new MutationObserver(() => { window.sawWidgetBar ||= !!document.querySelector('.widget-hprogress'); })
            .observe(document.body, {childList: true, subtree: true}); }""")
    page.click(".lm-MenuBar-item:has-text('Run')")
    page.click(".lm-Menu-item[data-command='runmenu:run-all']")
    prompts_js = (f"() => [...document.querySelectorAll('{NOTEBOOK} .jp-CodeCell .jp-InputPrompt')]"
                  ".map(e => e.textContent.trim())")
    deadline = time.monotonic() + 240
    while True:  # done: no cell queued or running, the kernel idle (twice in a row)
        prompts = page.evaluate(prompts_js)
        idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0
        if idle and "[*]:" not in prompts and prompts[0] != "[ ]:":
            time.sleep(1)
            if "[*]:" not in page.evaluate(prompts_js):
                break
        assert time.monotonic() < deadline, f"Run All did not finish: {prompts}"
        time.sleep(1)
    _screenshot(page, "3_chapter_ran", tmp_path_factory)

    prompts = page.evaluate(prompts_js)
    outputs = page.eval_on_selector_all(f"{NOTEBOOK} .jp-OutputArea-output",
                                        "els => els.map(e => e.textContent)")
    errors = [text[:600] for text in outputs if "Traceback" in text]
    assert not errors, errors
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), f"cells not executed: {prompts}"
    assert any("profile=smoke" in text for text in outputs), "the smoke parameters did not apply"
    assert page.evaluate("window.sawWidgetBar"), "no tqdm widget bar was drawn in the notebook"
    assert sum(map(len, outputs)) < MAX_OUTPUT_CHARS, "a cell wrote a log, not a result"
    after = sorted(p.relative_to(cache) for p in cache.rglob("*.pt"))
    assert after == before, f"recomputed in JupyterLab: {sorted(set(after) - set(before))}"
