"""N shadow DM condensations plus one model each: the engine against a plain loop.

LiRA (privacy chapter) prepares many "shadow" synthetic sets, each distilled
from a random half of a pool, and trains a model on each. This benchmark runs
that workload at the ``cpu`` profile's sizes (MNIST, 500 real images per
class, halves of 2,500 images, DM 150 steps with batch_real 32 on ConvNet-3
width 32, ipc 10; one evaluation model of 100 epochs per shadow) three ways,
side by side in one process, every cache disabled:

* ``loop``: ``condense(...)`` then ``evaluate(...)`` for each shadow, the way a
  notebook would write it without the engine;
* ``engine local``: ``condense_many`` (in this process) and ``evaluate_many``
  (the N models trained in one batched call on the pooled sets);
* ``engine compiled``: the same with ``DMConfig(compile=True)``: the
  embedding is compiled once and the compiled code serves all N syntheses of
  the process (a single 150-step run does not repay the compilation, which is
  why the default compiles only runs of 2,000 steps or more);
* ``engine ray``: ``condense_many`` on a local Ray cluster of one worker per
  core (each job one torch thread) and ``evaluate_many`` here.

The eager variants produce the same synthetic sets (checked at the end, bit
for bit where the thread count matches); compiled steps agree to rounding.
Printed: wall time, the speed-up over the
loop, and achieved GFLOP/s (FLOPs counted once with
``torch.utils.flop_counter`` on one shadow) against a large-matmul estimate of
the machine's float32 peak.

    python benchmarks/bench_shadows.py              # N = 16 at cpu sizes (~20 min on 2 cores)
    python benchmarks/bench_shadows.py --quick      # tiny sizes, checks the script runs
    python benchmarks/bench_shadows.py --no-ray     # without the Ray variant
    python benchmarks/bench_shadows.py --json DIR   # also write DIR/shadows.bench.json (ddrepro.perf)
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ddrepro import get_profile
from ddrepro.condense import condense, condense_many
from ddrepro.config import DMConfig, EvalConfig, NetConfig, replace_checked
from ddrepro.data import load
from ddrepro.evaluate import evaluate, evaluate_many
from ddrepro.executor import Job, RayExecutor
from ddrepro.perf import make_record, matmul_peak_gflops, timing, write_record

# -- configuration (the cpu profile's sizes) ------------------------------------
N_SHADOWS = 16
IPC = 10
PER_CLASS = 500           # pool: the cpu profile's real subset
TEST_SIZE = 2000
SEED = 0


def workload(quick: bool) -> tuple[DMConfig, NetConfig, EvalConfig]:
    prof = get_profile("smoke" if quick else "cpu")
    return prof.dm, prof.net, replace_checked(prof.eval, n_models=1)


def halves(n_pool: int, count: int) -> list[torch.Tensor]:
    """``count`` random halves of the pool, seeded (LiRA's shadow training sets)."""
    gen = torch.Generator().manual_seed(SEED)
    return [torch.randperm(n_pool, generator=gen)[:n_pool // 2] for _ in range(count)]


def run_loop(pool, test, subsets, dm, net, ev):
    sets, results = [], []
    for i, subset in enumerate(subsets):
        syn = condense("dm", pool.take(subset), IPC, config=dm, seed=i, net_cfg=net, device="cpu",
                       quiet=True, cache=False)
        results.append(evaluate(syn, test, net_cfg=net, eval_cfg=ev, seed=i, flip=False,
                                device="cpu", quiet=True, cache=False))
        sets.append(syn)
    return sets, results


def run_engine(pool, test, subsets, dm, net, ev, executor=None):
    seeds = list(range(len(subsets)))
    sets = condense_many("dm", pool, IPC, subsets=subsets, seeds=seeds, executor=executor,
                         config=dm, net_cfg=net, device="cpu", quiet=True, cache=False)
    results = evaluate_many(sets, test, net_cfg=net, eval_cfg=ev, seeds=seeds, flip=False,
                            device="cpu", quiet=True, cache=False)
    return sets, results


def flops_per_shadow(pool, test, subset, dm, net, ev) -> float:
    with FlopCounterMode(display=False) as counter:
        run_loop(pool, test, [subset], dm, net, ev)
    return float(counter.get_total_flops())


def main() -> None:
    global N_SHADOWS, PER_CLASS, TEST_SIZE, IPC
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    parser.add_argument("--n", type=int, default=N_SHADOWS, help="number of shadows")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray variant")
    parser.add_argument("--json", metavar="DIR", help="write the measurements to DIR/shadows.bench.json")
    args = parser.parse_args()
    N_SHADOWS = args.n
    if args.quick:
        N_SHADOWS, PER_CLASS, TEST_SIZE, IPC = min(args.n, 2), 20, 100, 2
    dm, net, ev = workload(args.quick)
    pool = load("mnist", "train").subset_per_class(PER_CLASS, seed=SEED)
    test = load("mnist", "test").subset(TEST_SIZE, seed=SEED)
    subsets = halves(len(pool), N_SHADOWS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"{N_SHADOWS} shadows: DM {dm.steps} steps, batch_real {dm.batch_real}, ConvNet-{net.depth} "
          f"w{net.width}, ipc {IPC} on halves of {len(pool)} MNIST images; 1 model x {ev.epochs} epochs each")
    flops = N_SHADOWS * flops_per_shadow(pool, test, subsets[0], dm, net, ev)
    peak = matmul_peak_gflops("cpu", n=1024 if args.quick else 4096)
    compiled = replace_checked(dm, compile=True)
    variants = {"loop": lambda: run_loop(pool, test, subsets, dm, net, ev),
                "engine local": lambda: run_engine(pool, test, subsets, dm, net, ev),
                "engine compiled": lambda: run_engine(pool, test, subsets, compiled, net, ev)}
    ray_start = None
    if not args.no_ray:
        ray_executor = RayExecutor(num_cpus=os.cpu_count(), cpus_per_job=1)
        start = time.perf_counter()  # cluster and worker start-up, not part of the timed work
        ray_executor.map([Job(torch.get_num_threads, {}, f"warm-up {i}") for i in range(os.cpu_count())],
                         quiet=True)
        ray_start = time.perf_counter() - start
        print(f"(Ray: local cluster and {os.cpu_count()} workers started in {ray_start:.1f} s, excluded below)")
        variants["engine ray"] = lambda: run_engine(pool, test, subsets, dm, net, ev, ray_executor)
    seconds, outputs = {}, {}
    for name, fn in variants.items():
        start = time.perf_counter()
        outputs[name] = fn()
        seconds[name] = time.perf_counter() - start
    base = seconds["loop"]
    print(f"{flops / 1e9:.1f} GFLOP in all (conv/matmul, counted on one shadow); "
          f"large-matmul float32 peak estimate {peak:.1f} GFLOP/s")
    for name, secs in seconds.items():
        print(f"  {name:16s} {secs:8.1f} s  x{base / secs:5.2f} vs loop  {flops / secs / 1e9:6.1f} GFLOP/s "
              f"({100 * flops / secs / 1e9 / peak:4.1f}% of peak)")
    loop_sets, _ = outputs["loop"]
    for name, (sets, results) in outputs.items():
        same = all(torch.equal(a.images, b.images) for a, b in zip(sets, loop_sets))
        gap = max(float((a.images - b.images).norm() / b.images.norm()) for a, b in zip(sets, loop_sets))
        accs = torch.cat([r.accs for r in results])
        sameness = "identical to the loop's" if same else f"{gap:.1e} (relative norm) from the loop's"
        print(f"  {name:16s} synthetic sets {sameness}; shadow models' test accuracy "
              f"{100 * accs.mean():.2f} +- {100 * accs.std():.2f} %")
    if args.json:
        record = make_record(
            "shadows", title=f"{N_SHADOWS} shadow DM condensations and one model each (LiRA's workload)",
            size="quick" if args.quick else "full", device="cpu", baseline="loop", unit=f"run of {N_SHADOWS}",
            timings=[timing("all shadows", name, [secs], flops=flops) for name, secs in seconds.items()],
            peaks={"float32": peak},
            settings={"shadows": N_SHADOWS, "dm_steps": dm.steps, "batch_real": dm.batch_real, "ipc": IPC,
                      "net_width": net.width, "eval_epochs": ev.epochs, "pool": len(pool), "cores": os.cpu_count(),
                      "ray_start_s": ray_start})
        print(f"record: {write_record(record, args.json)}")


if __name__ == "__main__":
    main()
