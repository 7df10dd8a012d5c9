"""Progress bars: tqdm's notebook form in an interactive kernel with ipywidgets, plain elsewhere.

The choice is a pure function (``runtime.progress_kind``), tested over its whole
table; ``progress()`` is then checked to build the bar that choice names, and
one real papermill run through the runner checks that a batch kernel keeps
plain bars whose redraws do not pile up in the executed copy.
"""

from __future__ import annotations

import itertools
import json
import sys
import types

import pytest
from tqdm import tqdm as plain_tqdm

from ddrepro import chapters, runner, runtime


@pytest.mark.parametrize("kernel,widgets,batch", list(itertools.product([True, False], repeat=3)))
def test_only_an_interactive_kernel_with_widgets_gets_notebook_bars(kernel, widgets, batch):
    expected = "notebook" if (kernel and widgets and not batch) else "plain"
    assert runtime.progress_kind(kernel=kernel, widgets=widgets, batch=batch) == expected


def test_a_plain_python_process_is_not_a_kernel():
    assert runtime.in_jupyter_kernel() is False


def _fake_kernel(monkeypatch):
    """Make ``in_jupyter_kernel`` see an ipykernel shell (by class name, as ipykernel's is)."""
    shell = type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


def _bar(**kwargs):
    # quiet=True: the bar is built but never drawn, so no widget is displayed from pytest.
    return runtime.progress(range(3), desc="t", quiet=True, **kwargs)


def test_progress_is_plain_outside_a_kernel(monkeypatch):
    monkeypatch.delenv(runtime.ENV_STAGE, raising=False)
    bar = _bar()
    assert type(bar) is plain_tqdm and list(bar) == [0, 1, 2]


def test_progress_is_the_notebook_form_in_an_interactive_kernel(monkeypatch):
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm as notebook_tqdm

    _fake_kernel(monkeypatch)
    monkeypatch.delenv(runtime.ENV_STAGE, raising=False)
    assert isinstance(_bar(), notebook_tqdm)
    monkeypatch.setenv(runtime.ENV_STAGE, "/some/stage")  # the batch runner's kernel
    assert type(_bar()) is plain_tqdm


def test_progress_is_plain_in_a_kernel_without_ipywidgets(monkeypatch):
    _fake_kernel(monkeypatch)
    monkeypatch.delenv(runtime.ENV_STAGE, raising=False)
    monkeypatch.setattr(runtime, "_widgets_importable", lambda: False)
    assert type(_bar()) is plain_tqdm


def test_the_runner_and_progress_agree_on_the_batch_signal():
    assert runner.ENV_STAGE == runtime.ENV_STAGE


LOOPS = 3_000


@pytest.mark.slow
def test_a_batch_run_keeps_plain_bars_and_a_small_executed_copy(tmp_path):
    """A cell redrawing a bar thousands of times: the executed copy stays small, with no widget."""
    import nbformat

    source = tmp_path / "bars.ipynb"
    cell = ("from ddrepro.runtime import progress\n"
            f"for _ in progress(range({LOOPS}), desc='loop', mininterval=0, miniters=1):\n"
            "    pass\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(source))
    stage = tmp_path / "stage"
    result = runner.execute(chapters.Page("bars", source), {}, stage)
    assert result.status == "ok", result.failure
    executed = json.loads(result.output.read_text())
    outputs = executed["cells"][0]["outputs"]
    assert not [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    streams = [o for o in outputs if o.get("name") == "stderr"]
    assert streams, "the plain bar draws on stderr"
    stderr = "".join("".join(o["text"]) for o in streams)
    # Uncollapsed, every redraw (~60 bytes) stays: ~180 kB for this loop, megabytes for a chapter.
    assert len(stderr) < 4 * 1024, f"{len(stderr)} bytes of stderr kept"
