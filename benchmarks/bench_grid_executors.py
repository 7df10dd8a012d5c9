"""One chapter's grid of jobs three ways: in one process, on a local Ray cluster, and as shards.

``ddrepro precompute GRID`` fills the artifact cache with a chapter's grid
(``ddrepro.grids``). This benchmark runs the same grid, each way from an empty
cache of its own (``DDREPRO_CACHE`` in a temporary folder, so no way reuses
another's results and the shared cache is never touched):

* ``in-process``: ``--executor local``, the jobs one after another in one process
  (torch's own thread count, from the environment);
* ``ray``: ``--executor ray``, a local Ray cluster of one single-thread worker per core
  (its start-up is inside the command's time, and reported apart);
* ``N shards``: N ``--shard i/N`` commands side by side on this machine, each with
  ``cores / N`` torch threads (the way a batch system would spread a grid); the
  time is the slowest shard's.

Each way is timed twice: the whole command (start-up, imports, building the
jobs, writing the artifacts) and the jobs alone (the figure ``precompute``
prints). At the end the three caches are compared: the same grid must leave the
same artifacts (their content-hashed names), whichever way it ran.

    python benchmarks/bench_grid_executors.py --quick                  # does_it_work at smoke
    python benchmarks/bench_grid_executors.py --grid claims --profile cpu
    python benchmarks/bench_grid_executors.py --quick --json DIR       # DIR/grid_executors.bench.json
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
JOBS_TIME = re.compile(r"precompute \S+: (\d+) of (\d+) jobs run .* in ([0-9.]+)s")


def precompute(grid: str, profile: str, cache: Path, *extra: str, threads: int | None = None):
    """Start ``ddrepro precompute`` with its own cache; returns the running process and its start time."""
    env = os.environ | {"DDREPRO_CACHE": str(cache), "DDREPRO_QUIET": "1"}
    if threads is not None:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-c", "import sys; from ddrepro.cli import main; sys.exit(main())",
           "precompute", grid, "--profile", profile, "--quiet", *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, start: float) -> tuple[float, float, int]:
    """Wait for ``proc``: (wall seconds since ``start``, the jobs' seconds it printed, jobs run)."""
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    found = JOBS_TIME.search(out)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"precompute failed (exit {proc.returncode}):\n{out[-2000:]}\n{err[-3000:]}")
    return wall, float(found.group(3)), int(found.group(1))


def artifacts(cache: Path) -> set[str]:
    """The artifacts a cache holds, by their content-hashed paths (what a later run would find)."""
    return {str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file() and not p.name.startswith(".")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="does_it_work", help="a chapter with a registered grid")
    parser.add_argument("--profile", default="cpu", help="smoke | cpu | paper")
    parser.add_argument("--shards", type=int, default=os.cpu_count(), help="shards side by side (default: cores)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray way")
    parser.add_argument("--quick", action="store_true", help="the grid at the smoke profile")
    parser.add_argument("--json", metavar="DIR", help="write the measurements to DIR/grid_executors.bench.json")
    args = parser.parse_args()
    if args.quick:
        args.profile = "smoke"
    if not args.no_ray and importlib.util.find_spec("ray") is None:
        print("Ray is not installed (pip install ray): the Ray way is skipped")
        args.no_ray = True
    cores = os.cpu_count() or 1
    shards = max(1, args.shards)
    print(f"grid {args.grid} at profile {args.profile}; {cores} cores; {shards} shards of "
          f"{max(1, cores // shards)} thread(s)")
    whole, jobs, caches = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="ddrepro_grid_bench_") as tmp:
        def fresh(name: str) -> Path:
            caches[name] = Path(tmp) / re.sub(r"\W+", "_", name)
            return caches[name]

        start = time.perf_counter()
        whole["in-process"], jobs["in-process"], n_jobs = finish(precompute(args.grid, args.profile,
                                                                            fresh("in-process")), start)
        if not args.no_ray:
            start = time.perf_counter()
            whole["ray"], jobs["ray"], _ = finish(precompute(args.grid, args.profile, fresh("ray"),
                                                             "--executor", "ray"), start)
        name = f"{shards} shards"
        cache = fresh(name)
        start = time.perf_counter()
        procs = [precompute(args.grid, args.profile, cache, "--shard", f"{i}/{shards}",
                            threads=max(1, cores // shards)) for i in range(shards)]
        done = [finish(p, start) for p in procs]
        whole[name], jobs[name] = max(d[0] for d in done), max(d[1] for d in done)
        same = {way: artifacts(c) == artifacts(caches["in-process"]) for way, c in caches.items()}
        n_artifacts = len(artifacts(caches["in-process"]))
    print(f"{n_jobs} jobs; {'way':<14} {'whole s':>8} {'jobs s':>8} {'x whole':>8} {'x jobs':>7}  same artifacts")
    for way in whole:
        print(f"  {way:<20} {whole[way]:8.1f} {jobs[way]:8.1f} {whole['in-process'] / whole[way]:7.2f}x "
              f"{jobs['in-process'] / jobs[way]:6.2f}x  {same[way]}")
    if not all(same.values()):
        raise SystemExit("the ways left different artifacts: a grid's result must not depend on how it ran")
    if args.json:
        from ddrepro.perf import make_record, timing, write_record

        record = make_record(
            "grid_executors", title=f"the {args.grid} grid ({n_jobs} jobs) in one process, on Ray, as shards",
            size="quick" if args.quick else "full", device="cpu", baseline="in-process", unit="grid",
            timings=[timing(case, way, [times[way]]) for case, times in
                     (("whole command", whole), ("jobs alone", jobs)) for way in times],
            settings={"grid": args.grid, "profile": args.profile, "jobs": n_jobs, "cores": cores,
                      "shards": shards, "threads_per_shard": max(1, cores // shards),
                      "artifacts": n_artifacts, "same_artifacts": all(same.values()),
                      "omp_num_threads": os.environ.get("OMP_NUM_THREADS")})
        print(f"record: {write_record(record, args.json)}")


if __name__ == "__main__":
    main()
