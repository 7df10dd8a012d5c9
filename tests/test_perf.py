"""Benchmark records and page times (``ddrepro.perf``), ``benchmarks/run_all.py``, the performance page's order.

Known answers on planted records; one benchmark really runs at its tiny size and its
record is read back. No timing is asserted: speed goals are the benchmarks' business.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ddrepro import chapters, perf

from .conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import run_all  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)


def planted(**extra):
    timings = [perf.timing("a", "plain", [2.0, 3.0, 1.0], flops=4e9),
               perf.timing("a", "fast", [0.5, 0.5, 0.6], flops=4e9),
               perf.timing("b", "plain", [1.0]), perf.timing("b", "fast", [4.0])]
    return perf.make_record("toy", size="quick", device="cpu", baseline="plain", unit="step", timings=timings,
                            peaks={"float32": 16.0}, settings={"n": 3}, **extra)


def test_speedup_is_the_baseline_median_over_the_variant_median_within_a_case():
    frame = perf.speedup_frame([planted()]).set_index(["case", "variant"])
    assert frame.loc[("a", "plain"), "speedup"] == 1.0
    assert frame.loc[("a", "fast"), "speedup"] == pytest.approx(2.0 / 0.5)
    assert frame.loc[("b", "fast"), "speedup"] == pytest.approx(0.25)      # slower than its baseline
    assert frame.loc[("a", "fast"), "gflops"] == pytest.approx(4e9 / 0.5 / 1e9)
    assert frame.loc[("a", "fast"), "pct_peak"] == pytest.approx(100 * 8.0 / 16.0)
    assert frame.loc[("b", "fast"), ["gflops", "pct_peak"]].isna().all()   # FLOPs not counted there
    shown = perf.speedup_display(perf.speedup_frame([planted()]))
    assert list(shown["speed-up"]) == ["baseline", "4.00x", "baseline", "0.25x"]
    sentence = perf.record_sentence(planted())
    assert "`fast`, 4.00x (a)" in sentence and "size `quick`" in sentence


def test_a_record_needs_its_baseline_in_every_case_and_positive_times():
    with pytest.raises(ValueError, match="baseline 'plain' not timed in case"):
        perf.make_record("toy", size="quick", device="cpu", baseline="plain", unit="step",
                         timings=[perf.timing("a", "plain", [1.0]), perf.timing("b", "fast", [1.0])])
    with pytest.raises(ValueError, match="positive times"):
        perf.timing("a", "plain", [])


def test_records_round_trip_and_other_files_are_skipped(tmp_path):
    record = planted()
    assert {"device_name", "threads", "torch", "date", "commit", "command"} <= set(record)
    path = perf.write_record(record, tmp_path / "out")
    assert path.name == "toy.bench.json"
    (tmp_path / "out" / "broken.bench.json").write_text("{not json")
    (tmp_path / "out" / "other.bench.json").write_text(json.dumps({"benchmark": "x"}))   # no schema
    (tmp_path / "out" / "toy.log").write_text("text")
    found = perf.read_records(tmp_path / "out", tmp_path / "missing")
    assert [r["benchmark"] for r in found] == ["toy"] and found[0]["timings"] == record["timings"]


def test_page_times_read_every_run_record_of_the_stage_and_results(tmp_path):
    def run(rel, seconds, status="ok", **params):
        path = tmp_path / f"{rel}.run.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"status": status, "seconds": seconds, "key": {"params": params}}))

    run("book/data", 12.5, profile="smoke")
    run("book/01_basics/budget", 60.0, profile="cpu", overrides={"dm.steps": 5})
    run("book/02_privacy/claims", 3.0, status="failed", profile="smoke")
    run("results/paper/book/data", 4.0, profile="paper")
    run("book/.hidden", 1.0, profile="smoke")                        # not a page's record
    (tmp_path / "book" / "broken.run.json").write_text("{")
    times = perf.page_times(tmp_path).set_index("page")
    assert sorted(times.index) == ["book/01_basics/budget", "book/02_privacy/claims", "book/data",
                                   "results/paper/book/data"]
    assert times.loc["book/data", ["profile", "seconds", "source"]].tolist() == ["smoke", 12.5, "this build"]
    assert times.loc["book/01_basics/budget", "profile"] == "cpu + dm.steps=5"
    assert times.loc["book/02_privacy/claims", "status"] == "failed"
    assert times.loc["results/paper/book/data", "source"] == "kept under results/"


def test_the_gpu_results_readme_gives_each_file_its_provenance(tmp_path):
    table = perf.provenance_table(REPO / "results" / "paper" / "README.md")
    assert table, "results/paper/README.md has no provenance table"
    for name, row in table.items():
        assert (REPO / "results" / "paper" / name).is_file(), name
        assert row["device"] and row["commit"] and row["command"]
    (tmp_path / "README.md").write_text("| file | device | commit |\n| --- | --- | --- |\n"
                                        "| `a.txt` | one NVIDIA H200 | abc1234 |\n")
    (tmp_path / "a.txt").write_text("ms per step 1.0\n")
    (tmp_path / "b.txt").write_text("no provenance\n")
    perf.write_record(planted(), tmp_path)
    files = {f["file"]: f for f in perf.result_files(tmp_path)}
    assert files["a.txt"]["provenance"]["device"] == "one NVIDIA H200" and files["a.txt"]["text"]
    assert files["b.txt"]["provenance"] is None
    assert files["toy.bench.json"]["record"]["benchmark"] == "toy"


@pytest.mark.parametrize("quick", [True, False])
def test_run_all_plans_every_benchmark_with_a_record(quick, tmp_path):
    plan = run_all.plan(quick, "cpu")
    assert [name for name, _ in plan] == list(run_all.BENCHMARKS)
    for name, args in plan:
        assert (REPO / "benchmarks" / f"bench_{name}.py").is_file()
        cmd = run_all.command(name, args, tmp_path)
        assert cmd[-2:] == ["--json", str(tmp_path)] or cmd[-1] == f"json={tmp_path}"
    assert ("--no-ray" in dict(plan)["shadows"]) and "--no-ray" not in dict(run_all.plan(quick, ray=True))["shadows"]
    cuda = dict(run_all.plan(quick, "cuda"))
    assert ["--device", "cuda"] == cuda["dm_step"][-2:]


def test_run_all_writes_a_record_a_log_and_a_summary(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/run_all.py", "--quick", "--only", "eval_batched",
                           "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    record, = perf.read_records(tmp_path)
    assert record["benchmark"] == "eval_batched" and record["size"] == "quick" and record["baseline"] == "loop"
    frame = perf.speedup_frame([record])
    assert set(frame["variant"]) == {"loop", "batched[unrolled]", "batched[vmap]"}
    assert (frame["gflops"] > 0).all() and record["peak_gflops"]["float32"] > 0
    summary = json.loads((tmp_path / "run_all.json").read_text())
    assert [b["benchmark"] for b in summary["benchmarks"]] == ["eval_batched"] and summary["benchmarks"][0]["ok"]
    assert "record:" in (tmp_path / "eval_batched.log").read_text()
    bad = subprocess.run([sys.executable, "benchmarks/run_all.py", "--only", "nope", "--out", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown benchmark" in bad.stderr


def test_the_performance_page_is_a_results_page_run_after_every_chapter():
    stems = [p.stem for p in chapters.notebooks(REPO)]
    assert "performance" in stems and stems.index("performance") > stems.index("scorecard")
    # it reads the chapters' run records, so the runner re-runs it when they do (ddrepro.runner)
    from ddrepro import runner

    assert runner.collects_scorecards(chapters.resolve_chapter("performance", REPO))
    order = runner.execution_order([(page, {}) for page in chapters.notebooks(REPO)])
    assert order[-1][0].stem == "performance", "it times every page run before it"


def test_a_grid_run_in_process_and_as_shards_leaves_the_same_artifacts(tmp_path):
    # one thread in every way: the in-process run otherwise uses all cores, and a different thread
    # count sums floats in another order, so the artifacts' bytes could differ (seen in CI)
    done = subprocess.run([sys.executable, "benchmarks/bench_grid_executors.py", "--quick", "--no-ray",
                           "--shards", "2", "--json", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    record, = perf.read_records(tmp_path)
    settings = record["settings"]
    assert settings["same_artifacts"] and settings["artifacts"] > 0 and settings["shards"] == 2
    ways = perf.speedup_frame([record])
    assert set(ways["variant"]) == {"in-process", "2 shards"}
    assert set(ways["case"]) == {"whole command", "jobs alone"}


def test_the_grid_benchmark_reads_the_jobs_time_precompute_prints():
    import bench_grid_executors as grid

    line = "precompute does_it_work: 15 of 30 jobs run (shard 1/2, local) in 9.3s; cache /tmp/x"
    found = grid.JOBS_TIME.search(line)
    assert found and found.groups() == ("15", "30", "9.3")


def test_failed_benchmarks_are_read_from_run_alls_summary(tmp_path):
    (tmp_path / "run_all.json").write_text(json.dumps({"benchmarks": [
        {"benchmark": "dm_step", "ok": True, "returncode": 0},
        {"benchmark": "shadows", "ok": False, "returncode": 1},
        {"benchmark": "grid_executors", "ok": False, "returncode": 124}]}))
    (tmp_path / "shadows.log").write_text("Traceback ...\nRuntimeError: boom\n")
    assert perf.failed_benchmarks(tmp_path) == [("shadows", "RuntimeError: boom"), ("grid_executors", "exit 124")]
    assert perf.failed_benchmarks(tmp_path / "nowhere") == []
