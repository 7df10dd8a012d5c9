"""EAD's efficiency claim: time per iteration and peak memory of EAD, MTT and DM, side by side.

The effect-alignment abstract calls EAD efficient, "without costly
mechanisms", against process alignment (MTT's unrolled student). This script
runs one iteration loop of each method -- the registered condensers' own
``run`` functions, nothing re-implemented -- on the same random data (a
step's cost does not depend on pixel values), the same network and the same
IPC, each in a fresh subprocess so that one method's peak memory cannot
hide another's:

* time: median wall time of a step (warm-up steps excluded; on CUDA each
  step ends with a synchronisation);
* memory: on CUDA, ``torch.cuda.max_memory_allocated`` during the steps minus
  what was allocated before them; on the CPU, the process's peak resident
  set (``VmHWM``, :mod:`ddrepro.memory`) minus its resident set just before the
  first timed step (the peak is reset after the warm-up steps, Linux
  ``clear_refs``; large allocations are mmap'd so that freed memory leaves the
  resident set), and the process's lifetime peak.

The expert buffer of EAD and MTT is a stand-in of random checkpoints (its
training is a one-off cost shared by every run on the same data, and the
values do not change a step's cost); DM needs none.

Hyperparameters come from a profile (``ddrepro.profiles``): ``cpu`` (the
book's sizes: ConvNet-3 width 32, EAD t_m 3 on batches of 32/20, MTT 10
student steps on the whole set, DM batch_real 32), ``paper`` (the configs'
defaults: width 128, EAD t_m 10 on batches of 256, MTT 30 student steps on
the whole set as its CIFAR-10 IPC 10 row, DM batch_real 256 with DSA), or
``smoke`` (``--quick``).

    python benchmarks/bench_ead_mtt_dm.py --profile cpu --ipc 10            # the book's size, CPU
    python benchmarks/bench_ead_mtt_dm.py --profile paper --ipc 10 --device cuda --real-per-class 6000
    python benchmarks/bench_ead_mtt_dm.py --quick                           # tiny: the script runs
    python benchmarks/bench_ead_mtt_dm.py --quick --json DIR     # also write DIR/ead_mtt_dm.bench.json

The record's baseline is MTT (the costly process alignment EAD is set against), so
each method's ratio is its speed-up over MTT; the memory figures go with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

import torch

METHODS = ("ead", "mtt", "dm")
SEED = 0


class FakeModels:
    """What EAD reads from the expert's models: the final logits (for the soft labels)."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def predict(self, images):
        return torch.zeros(1, images.shape[0], self.num_classes, device=images.device)


def stand_in_expert(ctx, cfg, n_checkpoints: int):
    """A trajectory of ``n_checkpoints`` random networks of ``ctx``'s architecture, on the device."""
    from torch.func import stack_module_state

    from ddrepro.nets import build_net
    from ddrepro.trajectory import Trajectory

    shape = ctx.real_images.shape
    nets = [build_net(ctx.net_cfg, shape[1], ctx.num_classes, shape[-1], seed=s) for s in range(n_checkpoints)]
    params, buffers = stack_module_state(nets)
    params = {k: v.detach().to(ctx.device) for k, v in params.items()}
    buffers = {k: v[0].to(ctx.device) for k, v in buffers.items()}
    updates = torch.full((n_checkpoints,), getattr(cfg, "checkpoint_every", 1), dtype=torch.int64)  # MTT: an epoch
    updates[-1] = 0
    traj = Trajectory(nets[0].to(ctx.device), params, buffers,
                      torch.full((n_checkpoints,), cfg.expert_lr), updates).to(ctx.device)
    return traj, FakeModels(ctx.num_classes)


def one_method(method: str, profile: str, ipc: int, real_per_class: int, steps: int, warmup: int,
               device: str) -> dict:
    """Run ``warmup + steps`` iterations of ``method`` in this process; return its measurements."""
    import ddrepro
    import ddrepro.condense.ead as ead
    import ddrepro.condense.mtt as mtt
    from ddrepro.condense import CONDENSERS
    from ddrepro.condense.base import Context, initial_synthetic
    from ddrepro.memory import PeakMemory, lifetime_peak_rss_mib
    from ddrepro.runtime import make_generator

    dev = torch.device(device)
    prof = ddrepro.get_profile(profile)
    cfg = prof.condenser_config(method)
    if method == "dm":
        cfg = dataclasses.replace(cfg, compile=False)
    n_checkpoints = 1 + (cfg.t_m if method == "ead" else
                         cfg.max_start + cfg.expert_steps if method == "mtt" else 0)
    stub = (lambda ctx, c: stand_in_expert(ctx, c, n_checkpoints))
    ead.expert_for = stub  # this subprocess only: no expert is trained
    # MTT reads a buffer of experts (one stand-in per expert: a random pick among equals)
    mtt.expert_buffer = lambda ctx, c, n_experts, dsa: [stub(ctx, c)[0]] * n_experts
    num_classes, shape = 10, (1, 28, 28)
    gen = make_generator(SEED)
    real_images = torch.randn(num_classes * real_per_class, *shape, generator=gen).to(dev)
    real_labels = torch.arange(num_classes, device=dev).repeat_interleave(real_per_class)
    class_indices = [torch.nonzero(real_labels == c).flatten() for c in range(num_classes)]
    syn_images, syn_labels, _ = initial_synthetic(real_images, class_indices, ipc, "real", gen)
    seconds: list[float] = []

    class Timed(Context):
        def steps(self, total, desc=None, **tracking):
            for i in super().steps(total, desc, **tracking):
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                start = time.perf_counter()
                yield i
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                seconds.append(time.perf_counter() - start)

    def loop(n: int) -> None:
        ctx = Timed(method=method, real_images=real_images, real_labels=real_labels,
                    class_indices=class_indices, num_classes=num_classes, ipc=ipc,
                    config=dataclasses.replace(cfg, steps=n), net_cfg=prof.net, aug_cfg=prof.aug,
                    flip=False, device=dev, generator=gen, seed=SEED, quiet=True)
        CONDENSERS.get(method).run(ctx, syn_images, syn_labels)

    loop(warmup)  # loads kernels and libraries: not the method's memory
    seconds.clear()
    with PeakMemory(dev) as peak:
        loop(steps)
    return {"method": method, "ms": 1e3 * statistics.median(seconds), "ms_min": 1e3 * min(seconds),
            "n": len(seconds), "seconds": seconds, "mem": peak.mib, "rss_peak_above": peak.rss_mib,
            "rss_lifetime_peak": lifetime_peak_rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", help="smoke | cpu | paper (hyperparameters and net)")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--real-per-class", type=int, default=500, help="real pool per class")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per method")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smoke profile, ipc 1, 2 steps")
    parser.add_argument("--json", metavar="DIR", help="write the measurements to DIR/ead_mtt_dm.bench.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one method, print JSON
    args = parser.parse_args()
    if args.quick:
        args.profile, args.ipc, args.steps, args.real_per_class = "smoke", 1, 2, 20
    if args.one:
        print(json.dumps(one_method(args.one, args.profile, args.ipc, args.real_per_class, args.steps,
                                    args.warmup, args.device)))
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device")
    where = (torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda")
             else f"CPU, {torch.get_num_threads()} threads")
    print(f"torch {torch.__version__}, {where}; profile {args.profile}, MNIST-shaped random data "
          f"({args.real_per_class}/class), ipc {args.ipc}, {args.steps} timed steps after {args.warmup}")
    rows = []
    for method in METHODS:  # one fresh process each: peak memory is per method
        cmd = [sys.executable, __file__, "--one", method, "--profile", args.profile, "--ipc", str(args.ipc),
               "--real-per-class", str(args.real_per_class), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--device", args.device]
        # large blocks always mmap'd, so freed memory leaves the resident set and the peak is the step's
        env = os.environ | {"MALLOC_MMAP_THRESHOLD_": "65536"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{method} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    ead = rows[0]
    memory = "CUDA peak allocated" if args.device.startswith("cuda") else "step peak RSS - RSS before"
    print(f"\n{'method':6s} {'ms/step':>10s} {'(min)':>9s} {'x EAD':>7s} {memory + ' MiB':>28s} {'x EAD':>7s}"
          f" {'lifetime RSS MiB':>17s}")
    for r in rows:
        mem_ratio = r["mem"] / ead["mem"] if ead["mem"] > 0 else float("nan")
        print(f"{r['method']:6s} {r['ms']:10.1f} {r['ms_min']:9.1f} {r['ms'] / ead['ms']:6.2f}x "
              f"{r['mem']:28.1f} {mem_ratio:6.2f}x {r['rss_lifetime_peak']:17.1f}")
    if args.json:
        from ddrepro.perf import make_record, timing, write_record

        record = make_record(
            "ead_mtt_dm", title="an iteration of EAD, MTT and DM", size="quick" if args.quick else "full",
            device=args.device, baseline="mtt", unit="step",
            timings=[timing("iteration", r["method"], r["seconds"]) for r in rows],
            settings={"profile": args.profile, "ipc": args.ipc, "real_per_class": args.real_per_class,
                      "steps": args.steps, "warmup": args.warmup,
                      "memory_mib": {r["method"]: round(r["mem"], 1) for r in rows}, "memory": memory})
        print(f"record: {write_record(record, args.json)}")


if __name__ == "__main__":
    main()
