"""``ddrepro lab``: JupyterLab on the book, with this environment as the ``ddrepro`` kernel.

The book's third kind of user opens a chapter and edits it live. ``ddrepro lab``
(``bash tools/dev.sh lab`` in the README) prepares *this* environment for that
and starts the server; everything it writes lives under ``sys.prefix``, so a
user's own Jupyter set-up in ``~`` is neither read for it nor modified:

1. the kernel spec ``ddrepro`` ("Python 3 (ddrepro)"), which every chapter's
   ``kernelspec`` declares, in ``<prefix>/share/jupyter/kernels/ddrepro``
   (what ``ipykernel install --sys-prefix`` writes), running this interpreter;
2. JupyterLab settings overrides in ``<app dir>/settings/overrides.d/ddrepro.json``:
   Markdown files open with jupytext's "Jupytext Notebook" viewer on a double
   click, so a MyST chapter opens as a notebook (the jupytext wheel itself
   enables the server side, its contents manager, in ``<prefix>/etc/jupyter``);
   and JupyterLab fetches no news and checks for no updates (the book works offline);
3. the data sets, fetched when missing (``ddrepro data fetch``);
4. ``jupyter lab`` on 127.0.0.1, rooted at the repository with ``book/`` open;
   it prints its URL with the access token. Extra arguments (``--no-browser``,
   ``--port 8890``, ``--ServerApp.root_dir=...``) go to ``jupyter lab`` and win
   over these defaults.

Each step is idempotent. The batch runner does not need any of it: papermill
runs the interpreter's own ``python3`` kernel (:mod:`ddrepro.runner`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Sequence

from .chapters import UserError

KERNEL_NAME = "ddrepro"
KERNEL_DISPLAY_NAME = "Python 3 (ddrepro)"
# The widget factory name jupytext's lab extension registers (its ``FACTORY``).
JUPYTEXT_VIEWER = "Jupytext Notebook"
JUPYTEXT_SERVER_EXTENSION = "jupyterlab_jupytext"
SETTINGS_FILE = "ddrepro.json"
BOOK_URL = "/lab/tree/book"  # the folder the browser opens on
LAB_SETTINGS = {
    # "markdown" is the file type of every .md; "myst" that of .myst/.mnb files.
    "@jupyterlab/docmanager-extension:plugin": {
        "defaultViewers": {"markdown": JUPYTEXT_VIEWER, "myst": JUPYTEXT_VIEWER},
    },
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(f"{module} is not installed in this environment ({sys.prefix}); "
                        "run `bash tools/dev.sh lab` or `pip install -e '.[lab]'`.")


def install_kernel(prefix: str | Path | None = None) -> Path:
    """Register this interpreter as the ``ddrepro`` kernel under ``prefix`` (default ``sys.prefix``)."""
    _require("ipykernel")
    from ipykernel.kernelspec import install

    return Path(install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY_NAME,
                        prefix=str(prefix or sys.prefix)))


def lab_app_dir() -> Path:
    """JupyterLab's application directory (``<prefix>/share/jupyter/lab``, or ``$JUPYTERLAB_DIR``)."""
    _require("jupyterlab")
    from jupyterlab.commands import get_app_dir

    return Path(get_app_dir())


def write_lab_settings(app_dir: str | Path | None = None) -> Path:
    """Write :data:`LAB_SETTINGS` as the environment's defaults; a user's own settings still win.

    ``overrides.d/`` holds one file per package, so a user's ``overrides.json``
    beside it is left alone. The file is rewritten only when its content differs.
    """
    target = Path(app_dir or lab_app_dir()) / "settings" / "overrides.d" / SETTINGS_FILE
    text = json.dumps(LAB_SETTINGS, indent=2, sort_keys=True) + "\n"
    if not target.is_file() or target.read_text() != text:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        except OSError as err:
            raise UserError(f"cannot write JupyterLab settings {target} ({err.strerror}); "
                            "run ddrepro lab from an environment you own (tools/dev.sh makes .venv).") from None
    return target


def jupytext_server_enabled() -> bool:
    """Whether some Jupyter config on this environment's path enables jupytext's server extension."""
    from jupyter_core.paths import jupyter_config_path

    for folder in map(Path, jupyter_config_path()):
        for path in [*sorted((folder / "jupyter_server_config.d").glob("*.json")),
                     folder / "jupyter_server_config.json"]:
            try:
                config = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if config.get("ServerApp", {}).get("jpserver_extensions", {}).get(JUPYTEXT_SERVER_EXTENSION):
                return True
    return False


def setup(prefix: str | Path | None = None, app_dir: str | Path | None = None) -> list[str]:
    """Steps 1 and 2 of the module docstring; returns one line per thing set up."""
    _require("jupyterlab")
    if not jupytext_server_enabled():
        raise UserError(f"jupytext's server extension is not enabled, so .md chapters would open as "
                        f"text; run `jupyter server extension enable --sys-prefix {JUPYTEXT_SERVER_EXTENSION}`.")
    kernel = install_kernel(prefix)
    settings = write_lab_settings(app_dir)
    return [f"kernel {KERNEL_NAME!r} ({KERNEL_DISPLAY_NAME}) -> {kernel}",
            f"JupyterLab opens .md chapters as notebooks (jupytext) -> {settings}"]


def server_command(root: Path, extra: Sequence[str] = (), *, as_root: bool | None = None) -> list[str]:
    """``jupyter lab`` on 127.0.0.1, rooted at ``root``, ``book/`` open, then ``extra``.

    A default is left out when ``extra`` sets the same option (traitlets rejects
    a second value), so ``--ServerApp.root_dir=DIR`` or ``--ip`` replace ours.
    Run as root (``as_root``, default: this process's user), as in a container,
    it adds ``--allow-root``: Jupyter otherwise refuses to start, and the
    server still listens on this machine only.
    """
    defaults = [
        (("--ServerApp.ip", "--ip"), "127.0.0.1"),  # only this machine can connect
        (("--ServerApp.root_dir", "--ServerApp.notebook_dir", "--notebook-dir"), str(root)),
        (("--LabApp.default_url",), BOOK_URL),  # LabApp sets the server's on start
    ]
    given = {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
    ours = [f"{names[0]}={value}" for names, value in defaults if not given & set(names)]
    if (os.geteuid() == 0 if as_root is None else as_root) and "--allow-root" not in given:
        ours.append("--allow-root")
    return [sys.executable, "-m", "jupyterlab", *ours, *extra]


def main(root: Path, extra: Sequence[str], *, setup_only: bool = False) -> int:
    """Set up (kernel, settings, data), then replace this process by the JupyterLab server."""
    from .chapters import fetch_data

    def say(line: str) -> None:
        print(f"[ddrepro] {line}", file=sys.stderr, flush=True)

    for line in setup():
        say(line)
    fetch_data()  # says "present and verified" when there is nothing to fetch
    if setup_only:
        return 0
    command = server_command(root, extra)
    say(f"starting jupyter lab {' '.join(command[3:])}")
    say("it prints its URL (with the access token) below; Ctrl-C stops it.")
    sys.stdout.flush()  # execv discards unflushed buffers
    # exec, not a child: Ctrl-C and a kill reach the server itself, which stops its kernels.
    os.execv(command[0], command)
    return 0  # not reached


__all__ = [
    "BOOK_URL", "KERNEL_DISPLAY_NAME", "KERNEL_NAME", "LAB_SETTINGS", "install_kernel",
    "jupytext_server_enabled", "lab_app_dir", "main", "server_command", "setup", "write_lab_settings",
]
