"""The artifact cache: stable keys, atomic writes, and resume after kill -9."""

import functools
import linecache
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from ddrepro import artifacts
from ddrepro.artifacts import (
    ArtifactStore, ArtifactWarning, artifact_key, cached, code_version, tensor_digest,
)
from ddrepro.config import DMConfig


def test_key_is_stable_and_sensitive_to_every_part():
    parts = {"config": DMConfig(), "seed": 0, "data": "abc"}
    key = artifact_key("synthetic", parts)
    assert key == artifact_key("synthetic", dict(reversed(list(parts.items()))))
    assert key != artifact_key("synthetic", {**parts, "seed": 1})
    assert key != artifact_key("synthetic", {**parts, "config": DMConfig(steps=5)})
    assert key != artifact_key("evaluation", parts)


def test_key_depends_on_the_source_code(monkeypatch):
    parts = {"seed": 0}
    before = artifact_key("k", parts)
    monkeypatch.setattr(artifacts, "source_hash", lambda: "edited")
    assert artifact_key("k", parts) != before


def test_tensor_digest_sees_values_shape_and_dtype():
    x = torch.arange(6.0)
    assert tensor_digest(x) == tensor_digest(x.clone())
    assert tensor_digest(x) != tensor_digest(x.view(2, 3))
    assert tensor_digest(x) != tensor_digest(x.double())
    y = x.clone()
    y[3] += 1e-6
    assert tensor_digest(x) != tensor_digest(y)


def test_cached_computes_once(tmp_path):
    store = ArtifactStore(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.ones(3)}

    first = cached("demo", {"a": 1}, compute, store=store)
    second = cached("demo", {"a": 1}, compute, store=store)
    assert len(calls) == 1 and torch.equal(first["x"], second["x"])
    cached("demo", {"a": 2}, compute, store=store)
    assert len(calls) == 2
    cached("demo", {"a": 2}, compute, store=store, enabled=False)
    assert len(calls) == 3


def _run(code: str, cache_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "DDREPRO_CACHE": str(cache_dir)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_kill_during_write_leaves_no_partial_artifact(tmp_path):
    # The process dies between writing the temporary file and renaming it: the
    # worst moment. The target must not exist, and a rerun recomputes cleanly.
    code = """
        import os, signal, torch
        from ddrepro.artifacts import cached
        os.replace = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        cached("demo", {"a": 1}, lambda: {"x": torch.zeros(1000)})
    """
    proc = _run(code, tmp_path)
    assert proc.returncode == -signal.SIGKILL
    finished = list((tmp_path / "demo").glob("*.pt"))
    assert finished == []
    store = ArtifactStore(tmp_path)
    key = artifact_key("demo", {"a": 1})
    assert store.load("demo", key) is None
    value = cached("demo", {"a": 1}, lambda: {"x": torch.ones(2)}, store=store)
    assert torch.equal(value["x"], torch.ones(2))


def test_rerun_after_kill_resumes_without_recomputing(tmp_path):
    log = tmp_path / "computed.txt"
    code = f"""
        import os, signal, torch
        from ddrepro.artifacts import cached
        def work(i):
            with open({str(log)!r}, "a") as f:
                f.write(f"{{i}}\\n")
            if i == 3 and os.environ.get("CRASH"):
                os.kill(os.getpid(), signal.SIGKILL)
            return torch.full((4,), float(i))
        for i in range(5):
            cached("grid", {{"i": i}}, lambda i=i: work(i))
    """
    os.environ["CRASH"] = "1"
    try:
        first = _run(code, tmp_path / "cache")
    finally:
        del os.environ["CRASH"]
    assert first.returncode == -signal.SIGKILL
    second = _run(code, tmp_path / "cache")
    assert second.returncode == 0, second.stderr
    # items 0-2 were finished before the kill and are not recomputed; 3 is redone once.
    assert log.read_text().split() == ["0", "1", "2", "3", "3", "4"]


def test_unreadable_artifact_is_reported_and_recomputed(tmp_path):
    store = ArtifactStore(tmp_path)
    key = artifact_key("demo", {"a": 1})
    path = store.path("demo", key)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    with pytest.warns(ArtifactWarning, match=str(path)):
        value = cached("demo", {"a": 1}, lambda: 42, store=store)
    assert value == 42 and store.load("demo", key) == 42


class _Payload:
    """Unpickling this would create a file: the test's proxy for running foreign code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_crafted_pickle_in_the_cache_is_refused_not_executed(tmp_path):
    store = ArtifactStore(tmp_path / "cache")
    marker = tmp_path / "code-ran"
    key = artifact_key("demo", {"a": 1})
    path = store.path("demo", key)
    path.parent.mkdir(parents=True)
    torch.save({"x": _Payload(str(marker))}, path)
    with pytest.warns(ArtifactWarning, match="cannot read artifact"):
        value = cached("demo", {"a": 1}, lambda: {"x": torch.ones(1)}, store=store)
    assert not marker.exists()
    assert torch.equal(value["x"], torch.ones(1))
    assert torch.equal(store.load("demo", key)["x"], torch.ones(1))  # replaced by a clean file


# -- scoped code versions ------------------------------------------------------

@pytest.fixture()
def package_copy(tmp_path, monkeypatch):
    """A copy of the ddrepro sources that the code-version functions read instead of the real ones."""
    copy = tmp_path / "ddrepro"
    shutil.copytree(artifacts.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(artifacts, "PACKAGE_DIR", copy)
    caches = (artifacts.module_closure, artifacts._module_hash)
    for fn in caches:
        fn.cache_clear()
    yield copy
    for fn in caches:
        fn.cache_clear()


def _edit(path, text="\n# an edit\n"):
    path.write_text(path.read_text() + text)
    artifacts.module_closure.cache_clear()
    artifacts._module_hash.cache_clear()


def test_code_version_covers_the_import_closure_and_nothing_else(package_copy):
    closure = artifacts.module_closure("ddrepro.condense.dm")
    assert {"ddrepro.condense.dm", "ddrepro.augment", "ddrepro.nets.convnet",
            "ddrepro.robust"} <= set(closure)
    assert "ddrepro.plots" not in closure and "ddrepro.condense.gm" not in closure
    dm_key = artifact_key("synthetic", {"a": 1}, code=("ddrepro.condense.dm",))
    _edit(package_copy / "plots.py", '\n"""A docstring edit."""\n')
    assert artifact_key("synthetic", {"a": 1}, code=("ddrepro.condense.dm",)) == dm_key
    _edit(package_copy / "augment.py")  # imported by dm: its artifacts must be recomputed
    assert artifact_key("synthetic", {"a": 1}, code=("ddrepro.condense.dm",)) != dm_key


def test_an_edit_after_import_keeps_the_imported_code_key_and_warns_once(package_copy, monkeypatch):
    """A Jupyter kernel keeps the modules it imported: their results keep that code's key."""
    monkeypatch.setattr(artifacts, "_IMPORTED", artifacts._snapshot())  # "import" the copy
    monkeypatch.setattr(artifacts, "_REPORTED", set())
    dm_key = artifact_key("synthetic", {"a": 1}, code=("ddrepro.condense.dm",))
    path = package_copy / "augment.py"
    path.write_text(path.read_text() + "\n# an edit\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    artifacts.module_closure.cache_clear()
    artifacts._module_hash.cache_clear()  # a fresh computation still reads the imported bytes
    with pytest.warns(artifacts.SourceChangedWarning, match="augment.py changed after this process"):
        assert artifact_key("synthetic", {"a": 1}, code=("ddrepro.condense.dm",)) == dm_key
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported once, not at every key
        artifact_key("synthetic", {"a": 2}, code=("ddrepro.condense.dm",))
    monkeypatch.setattr(artifacts, "_IMPORTED", artifacts._snapshot())  # a kernel restart
    artifacts._module_hash.cache_clear()
    assert artifact_key("synthetic", {"a": 1}, code=("ddrepro.condense.dm",)) != dm_key


def test_code_version_of_a_package_function_is_its_modules(package_copy):
    from ddrepro.condense.dm import dm_feature_loss

    assert code_version(dm_feature_loss) == code_version("ddrepro.condense.dm")
    assert code_version(functools.partial(dm_feature_loss, mean_estimator="mean")) \
        == code_version("ddrepro.condense.dm")


def test_a_notebook_callable_changes_the_key_when_its_source_changes(tmp_path, monkeypatch):
    def define(body: str, filename: str):
        source = f"def loss(x):\n    return {body}\n"
        # What IPython does for a cell: its text is registered with linecache.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        namespace = {}
        exec(compile(source, filename, "exec"), namespace)
        return namespace["loss"]

    first = define("x.sum()", "<cell-1>")
    same = define("x.sum()", "<cell-2>")
    edited = define("x.abs().sum()", "<cell-3>")
    key = artifact_key("demo", {"a": 1}, code=(first,))
    assert artifact_key("demo", {"a": 1}, code=(same,)) == key
    assert artifact_key("demo", {"a": 1}, code=(edited,)) != key
    # without any source text (plain exec), the bytecode stands in for it
    ns1, ns2 = {}, {}
    exec("def f(x):\n    return x + 1\n", ns1)
    exec("def f(x):\n    return x + 2\n", ns2)
    assert code_version(ns1["f"]) != code_version(ns2["f"])


def test_registering_a_name_twice_needs_replace():
    from ddrepro.registry import Registry

    reg = Registry("demo")

    def first():
        return 1

    def second():
        return 2

    reg.register("f")(first)
    reg.register("f")(first)  # the same object again: a re-imported module
    with pytest.raises(ValueError, match="replace=True"):
        reg.register("f")(second)
    reg.register("f", replace=True)(second)
    assert reg.get("f") is second
