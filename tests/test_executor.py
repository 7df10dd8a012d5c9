"""Grids of independent jobs: shards, the local and Ray executors, `ddrepro precompute`.

The promise under test: however a grid is run (in process, as shards of a job
array, or as Ray tasks) it leaves the same artifacts in the cache, and they
are the ones the chapter notebook's own calls look up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ddrepro import cli, get_profile
from ddrepro.artifacts import load_torch
from ddrepro.condense import condense
from ddrepro.evaluate import evaluate, train_full
from ddrepro.executor import (
    RAY_INSTALL_HINT, Job, JobError, LocalExecutor, RayExecutor, check_jobs, get_executor, parse_shard, shard,
    shared_arguments,
)
from ddrepro.grids import GRIDS
from ddrepro.experiment import real_and_test
from ddrepro.runtime import make_generator, resolve_device

from .conftest import REPO

SMOKE_METHODS = {"methods": ["random", "dm"]}


def scaled(x: int, factor: int = 1) -> int:
    """A module-level job function (jobs must be importable by name)."""
    return x * factor


def numbered_jobs(n: int) -> list[Job]:
    return [Job(scaled, {"x": i}, name=f"job{i}") for i in range(n)]


def artifact_files(root: Path) -> set[str]:
    """``kind/key.pt`` of every artifact under a cache root."""
    return {str(p.relative_to(root)) for p in root.rglob("*.pt")}


def assert_same_artifact(a, b, where: str) -> None:
    """Exactly equal tensors and values; timing fields (``seconds``) are ignored."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            if key != "seconds":
                assert_same_artifact(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_artifact(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


# ----------------------------------------------------------------------------- shards

@pytest.mark.parametrize("count", [1, 2, 3, 7, 12])
def test_shards_cover_every_job_exactly_once_in_grid_order(count):
    jobs = numbered_jobs(10)
    shards = [shard(jobs, i, count) for i in range(count)]
    names = [job.name for part in shards for job in part]
    assert sorted(names) == sorted(job.name for job in jobs)
    assert len(names) == len(set(names))
    for i, part in enumerate(shards):
        assert [job.name for job in part] == [f"job{k}" for k in range(i, 10, count)]


@pytest.mark.parametrize("index,count,fragment", [
    (2, 2, "shard index must be in 0..1"), (-1, 3, "shard index must be in 0..2"),
    (0, 0, "shard count must be >= 1"), (1.0, 2, "shard index must be an integer"),
])
def test_bad_shard_fails_clearly(index, count, fragment):
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        shard(numbered_jobs(4), index, count)


def test_parse_shard_reads_index_slash_count():
    assert parse_shard("3/16") == (3, 16)
    assert parse_shard(" 0 / 1 ") == (0, 1)


@pytest.mark.parametrize("text", ["3/2", "2/2", "0/0", "-1/2", "1", "a/b", ""])
def test_parse_shard_rejects_what_is_not_a_shard(text):
    with pytest.raises(ValueError, match="INDEX/COUNT"):
        parse_shard(text)


# ----------------------------------------------------------------------------- jobs and local runs

def test_jobs_need_importable_functions_and_unique_names():
    def nested(x):
        return x

    for fn in (nested, lambda x: x):
        with pytest.raises(ValueError, match="module-level function"):
            Job(fn, {"x": 1}, name="j")
    with pytest.raises(ValueError, match="non-empty string"):
        Job(scaled, {"x": 1}, name="")
    with pytest.raises(ValueError, match="repeated: job1"):
        check_jobs([*numbered_jobs(3), Job(scaled, {"x": 9}, name="job1")])


def test_job_keeps_its_own_copy_of_kwargs():
    kwargs = {"x": 2}
    job = Job(scaled, kwargs, name="j")
    kwargs["x"] = 5
    assert job.run() == 2


def test_local_executor_returns_results_in_job_order():
    jobs = [Job(scaled, {"x": i, "factor": 3}, name=f"j{i}") for i in (5, 1, 4, 2)]
    assert LocalExecutor().map(jobs, quiet=True) == [15, 3, 12, 6]
    assert LocalExecutor().map([], quiet=True) == []


def test_local_executor_sets_threads_for_the_jobs_and_restores_them():
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    jobs = [Job(torch.get_num_threads, {}, name="threads")]
    assert LocalExecutor(cpus_per_job=wanted).map(jobs, quiet=True) == [wanted]
    assert torch.get_num_threads() == before


def test_a_failing_job_is_named_and_its_cause_kept():
    jobs = [Job(scaled, {"x": 1}, name="fine"),
            Job(make_generator, {"seed": "x"}, name="mnist/dm/ipc10")]
    expected = r"job 'mnist/dm/ipc10' failed: ValueError: seed must be an int"
    with pytest.raises(JobError, match=expected) as info:
        LocalExecutor().map(jobs, quiet=True)
    assert isinstance(info.value.__cause__, ValueError)


def test_get_executor_names_the_known_ones():
    assert isinstance(get_executor(), LocalExecutor)
    assert get_executor("local", cpus_per_job=2).cpus_per_job == 2
    with pytest.raises(ValueError, match="Unknown executor 'slurm'; known: auto, local, ray"):
        get_executor("slurm")
    with pytest.raises(ValueError, match="cpus_per_job must be an integer >= 1"):
        get_executor("local", cpus_per_job=0)
    with pytest.raises(ValueError, match="auto executor takes no options"):
        get_executor("auto", cpus_per_job=2)


def test_auto_executor_uses_ray_only_on_a_multicore_machine_without_a_gpu(monkeypatch):
    import ddrepro.executor as executor_module

    pytest.importorskip("ray", reason="ray is not installed (pip install 'ddrepro[ray]')")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(executor_module.os, "cpu_count", lambda: 2)
    chosen = get_executor("auto")
    assert isinstance(chosen, RayExecutor) and chosen.cpus_per_job == 1 and chosen.address is None
    monkeypatch.setattr(executor_module.os, "cpu_count", lambda: 1)
    assert isinstance(get_executor("auto"), LocalExecutor)
    monkeypatch.setattr(executor_module.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # jobs share the one device here
    assert isinstance(get_executor("auto"), LocalExecutor)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "ray", None)  # without Ray: the local executor, no error
    assert isinstance(get_executor("auto"), LocalExecutor)


def test_shared_arguments_are_each_object_held_by_several_jobs_once():
    big, other, config = torch.zeros(1000), torch.ones(3), {"lr": 0.1}
    jobs = [Job(scaled, {"x": big, "factor": config, "seed": 0}, name="a"),
            Job(scaled, {"x": big, "factor": other, "seed": 0}, name="b"),
            Job(scaled, {"x": big, "factor": config, "seed": 0}, name="c")]
    shared = shared_arguments(jobs)
    assert len(shared) == 2 and any(s is big for s in shared) and any(s is config for s in shared)


def test_ray_executor_without_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ImportError, match=RAY_INSTALL_HINT.replace("[", r"\[").replace("]", r"\]")):
        get_executor("ray")


def test_ray_workers_get_absolute_cache_and_data_paths(monkeypatch, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'ddrepro[ray]')")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DDREPRO_CACHE", "rel/cache")
    monkeypatch.setenv("DDREPRO_DATA", "rel/data")
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.delenv("DDREPRO_QUIET", raising=False)
    env = get_executor("ray").worker_env()
    assert env["DDREPRO_CACHE"] == str(tmp_path.resolve() / "rel" / "cache")
    assert env["DDREPRO_DATA"] == str(tmp_path.resolve() / "rel" / "data")
    assert env["PYTHONPATH"] == "/somewhere" and env["DDREPRO_QUIET"] == "1"


# ----------------------------------------------------------------------------- the Chapter 1 grid

def test_grid_fills_exactly_the_artifacts_the_notebook_reads(monkeypatch, tmp_path, book_data):
    """After the grid, direct calls with Chapter 1's arguments (a student re-running one cell by
    hand) are all cache hits: the grid computes nothing the chapter would not read."""
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path / "cache"))
    prof = get_profile("smoke", {**SMOKE_METHODS, "data.datasets": ["mnist"], "ipcs": [1]})
    seed, quiet = 0, True
    jobs = GRIDS.get("does_it_work")(prof, seed=seed, device="auto", quiet=quiet)
    assert [j.name for j in jobs] == ["mnist/random/ipc1", "mnist/dm/ipc1", "mnist/full"]
    results = LocalExecutor().map(jobs, quiet=True)
    written = artifact_files(tmp_path / "cache")
    assert len(written) == 5  # two synthetic sets, two evaluations, one ceiling

    dev = resolve_device("auto")  # the notebook: dev = ddrepro.resolve_device(device)
    real, test = real_and_test(prof, "mnist", seed)
    for method, (job_syn, job_eval) in zip(prof.methods, results):
        syn = condense(method, real, 1, config=prof.condenser_config(method), seed=seed,
                       net_cfg=prof.net, aug_cfg=prof.aug, device=dev, quiet=quiet)
        result = evaluate(syn, test, net_cfg=prof.net, eval_cfg=prof.eval, aug_cfg=prof.aug,
                          seed=seed, flip=real.flip_ok, device=dev, quiet=quiet)
        assert torch.equal(syn.images, job_syn.images) and torch.equal(result.accs, job_eval.accs)
    full = train_full(real, test, net_cfg=prof.net, eval_cfg=prof.full, aug_cfg=prof.aug, seed=seed,
                      device=dev, quiet=quiet)
    assert torch.equal(full.accs, results[-1].accs)
    assert artifact_files(tmp_path / "cache") == written, "the notebook's calls computed something new"


# ----------------------------------------------------------------------------- the CLI

PRECOMPUTE_ERRORS = [
    (["precompute", "no_such_chapter"], "unknown chapter 'no_such_chapter'"),
    (["precompute", "data"], "chapter 'data' has no precompute grid; chapters with one: "),
    (["precompute", "does_it_work", "--shard", "3/2"],
     "shard '3/2' must be INDEX/COUNT with 0 <= INDEX < COUNT"),
    (["precompute", "does_it_work", "--shard", "two"], "must be INDEX/COUNT"),
    (["precompute", "does_it_work", "--executor", "slurm"], "unknown executor 'slurm'; known: auto, local, ray"),
    (["precompute", "does_it_work", "--executor", "auto", "--cpus-per-job", "2"],
     "--cpus-per-job needs --executor local or ray"),
    (["precompute", "does_it_work", "--cpus-per-job", "0"], "cpus_per_job must be an integer >= 1"),
    (["precompute", "does_it_work", "--ray-address", "auto"], "--ray-address needs --executor ray"),
    (["precompute", "does_it_work", "-p", "methods", "[dm, magic]"], "unknown method(s) ['magic']"),
]


@pytest.mark.parametrize("args,fragment", PRECOMPUTE_ERRORS, ids=[" ".join(a) for a, _ in PRECOMPUTE_ERRORS])
def test_precompute_user_errors_are_one_line_exit_2_before_any_compute(capsys, monkeypatch, tmp_path,
                                                                       args, fragment):
    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path / "cache"))
    assert cli.main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("ddrepro: error: ") and fragment in err
    assert not (tmp_path / "cache").exists()


def test_precompute_error_from_the_console_has_no_traceback(ddrepro_cli, tmp_path):
    done = ddrepro_cli("precompute", "does_it_work", "--shard", "3/2",
                       env={"DDREPRO_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == ("ddrepro: error: shard '3/2' must be INDEX/COUNT with "
                                   "0 <= INDEX < COUNT, e.g. 0/4 (the index counts from 0).")


# ----------------------------------------------------------------------------- Ray

@pytest.fixture(scope="module")
def ray_cluster():
    """A two-CPU local Ray cluster for this module, shut down however the tests end."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ddrepro[ray]')")
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def run_shards(cache: Path, count: int, extra: list[str]) -> list[str]:
    """``ddrepro precompute`` shards 0..count-1 as concurrent subprocesses (a job array)."""
    env = {**os.environ, "DDREPRO_CACHE": str(cache)}
    procs = [subprocess.Popen([sys.executable, "-m", "ddrepro", "precompute", "does_it_work",
                               "--shard", f"{i}/{count}", *extra], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(count)]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err
    return [out.strip() for out, _ in outs]


@pytest.mark.slow
def test_sharded_cli_and_ray_leave_identical_artifacts(ray_cluster, monkeypatch, tmp_path, book_data):
    """Two CLI shards (cache A) and RayExecutor (cache B): the same files, bit-identical tensors.

    Both sides run each job with one torch thread: PyTorch does not promise
    bitwise-equal results across thread counts, so the comparison pins it.
    """
    lines = run_shards(tmp_path / "A", 2, ["--profile", "smoke", "-p", "methods", "[random, dm]",
                                           "--cpus-per-job", "1", "--quiet"])
    assert lines[0].startswith("precompute does_it_work: 5 of 10 jobs run (shard 0/2, local)")
    assert lines[1].endswith(f"cache {(tmp_path / 'A').resolve()}")

    monkeypatch.setenv("DDREPRO_CACHE", str(tmp_path / "B"))  # read by the executor when it maps
    puts = []
    real_put = ray_cluster.put
    monkeypatch.setattr(ray_cluster, "put", lambda value: puts.append(value) or real_put(value))
    prof = get_profile("smoke", SMOKE_METHODS)
    jobs = GRIDS.get("does_it_work")(prof, seed=0, device="auto", quiet=None)
    results = get_executor("ray", cpus_per_job=1).map(jobs, quiet=True)
    per_dataset = ["tuple"] * 4 + ["EvalResult"]  # (ipc, method) jobs, then the ceiling
    assert [type(r).__name__ for r in results] == per_dataset * 2
    assert results[1][0].meta["method"] == "dm" and results[1][0].meta["ipc"] == 1  # job order
    reals = {id(job.kwargs["real"]): job.kwargs["real"] for job in jobs}
    assert sum(any(p is r for r in reals.values()) for p in puts) == len(reals) == 2  # put once each

    files = artifact_files(tmp_path / "A")
    assert files == artifact_files(tmp_path / "B") and len(files) == 18
    for name in sorted(files):
        assert_same_artifact(load_torch(tmp_path / "A" / name), load_torch(tmp_path / "B" / name), name)


@pytest.mark.slow
def test_a_failing_ray_job_is_named(ray_cluster):
    jobs = [Job(resolve_device, {"device": "cpu"}, name="fine"),
            Job(make_generator, {"seed": "x"}, name="shadow/17")]
    with pytest.raises(JobError, match=r"job 'shadow/17' failed: ValueError: seed must be an int"):
        get_executor("ray").map(jobs, quiet=True)
