"""The artifact cache: stable keys, atomic writes, and resume after kill -9."""

import os
import signal
import subprocess
import sys
import textwrap

import torch

from ddrepro import artifacts
from ddrepro.artifacts import ArtifactStore, artifact_key, cached, tensor_digest
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


def test_unreadable_artifact_is_recomputed(tmp_path):
    store = ArtifactStore(tmp_path)
    key = artifact_key("demo", {"a": 1})
    path = store.path("demo", key)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a torch file")
    value = cached("demo", {"a": 1}, lambda: 42, store=store)
    assert value == 42 and store.load("demo", key) == 42
