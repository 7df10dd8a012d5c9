"""One DM step at the paper's hyperparameters: ddrepro's loop vs a plain reference-style step.

Paper setting (Zhao & Bilen 2023): ConvNet-3 width 128 with instance norm,
batch_real 256 per class, IPC 10, 10 classes, DSA, SGD lr 1.0 momentum 0.5.
Both implementations run side by side in one process on random data (the
cost of a step does not depend on pixel values):

* ``plain``: written the way the usual reference code is -- NCHW, a Python
  loop over classes, one DSA draw and two ``apply`` calls per class, the real
  embedding computed with autograd enabled and then ``.detach()``-ed, frozen
  network weights, one ``backward`` for the summed loss.
* ``ours eager``: ``ddrepro.condense.dm.distribution_matching_run`` without
  ``torch.compile`` (all classes batched, channels-last, real side without a
  graph and in cache-sized chunks on a CPU, ``cpu_chunk_size``).
* ``ours compiled``: the same with ``torch.compile`` of the embedding, as runs
  of ``COMPILE_MIN_STEPS`` or more steps use it.
* ``ours compiled bf16``: the same with the real side's forward pass in
  bfloat16 (``DMConfig(real_dtype="bfloat16")``, opt-in: it changes the
  numbers, by far less than resampling the real batch does).

Prints ms/step (median over all timed steps; each block starts with a
warm-up step, where compilation happens), the speed-up over ``plain``, and
achieved GFLOP/s against a large-matmul estimate of this machine's peak in
the variant's dtype, re-measured before every round (the best one is used). The variants run in
interleaved blocks, ``ROUNDS`` times, because a shared machine's load drifts.

    python benchmarks/bench_dm_step.py                 # the paper setting, on the CPU
    python benchmarks/bench_dm_step.py --device cuda   # the same on a GPU (the issue's <= 12 ms goal)
    python benchmarks/bench_dm_step.py --quick         # tiny sizes, checks the script runs
    python benchmarks/bench_dm_step.py --json DIR      # also write DIR/dm_step.bench.json (ddrepro.perf)

On CUDA every timed step ends with a synchronisation, so the figures are
wall times of finished work.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ddrepro.augment import DSA
from ddrepro.condense.base import Context
from ddrepro.condense.dm import distribution_matching_run, dm_feature_loss
from ddrepro.config import AugConfig, NetConfig
from ddrepro.nets import build_net
from ddrepro.perf import make_record, timing, write_record
from ddrepro.runtime import make_generator

# -- configuration -----------------------------------------------------------
SHAPES = [(3, 32, 32), (1, 28, 28)]     # CIFAR-10-like and MNIST-like inputs
NUM_CLASSES = 10
IPC = 10
BATCH_REAL = 256
REAL_PER_CLASS = 300                    # pool the real batch is drawn from
NET = NetConfig(width=128, depth=3, norm="instancenorm")
LR_IMG, MOMENTUM = 1.0, 0.5
WARMUP, REPEATS = 1, 2                 # per block; blocks of the three variants interleave
ROUNDS = 2                              # so a change in machine load hits all of them
MATMUL_N = 4096
SEED = 0
DEVICE = torch.device("cpu")


def synchronize() -> None:
    """Wait for queued GPU work, so a wall-clock reading covers it (no-op on the CPU)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


class TimedContext(Context):
    """A Context whose step iterator records the wall time of every step body."""

    def steps(self, total, desc=None, **tracking):
        self.step_seconds = []
        for i in super().steps(total, desc, **tracking):
            start = time.perf_counter()
            yield i
            synchronize()
            self.step_seconds.append(time.perf_counter() - start)


def make_context(shape, real_images, real_labels) -> TimedContext:
    class_indices = [torch.nonzero(real_labels == c).flatten() for c in range(NUM_CLASSES)]
    return TimedContext(
        method="dm", real_images=real_images, real_labels=real_labels, class_indices=class_indices,
        num_classes=NUM_CLASSES, ipc=IPC, config=None, net_cfg=NET, aug_cfg=AugConfig(),
        flip=shape[0] == 3, device=DEVICE, generator=make_generator(SEED), seed=SEED,
        quiet=True,
    )


def time_ours(shape, real_images, real_labels, syn_images, syn_labels, compile_embed: bool,
              real_dtype: str = "float32") -> list[float]:
    ctx = make_context(shape, real_images, real_labels)
    distribution_matching_run(
        ctx, syn_images, syn_labels, dm_feature_loss, steps=WARMUP + REPEATS, batch_real=BATCH_REAL,
        lr_img=LR_IMG, momentum=MOMENTUM, dsa=True, compile_embed=compile_embed, real_dtype=real_dtype,
    )
    return ctx.step_seconds[WARMUP:]


def plain_step(real_by_class, syn, optimizer, aug, gen, shape):
    """The reference-style step: per-class loop, per-class Siamese DSA, NCHW, detach()."""
    net = build_net(NET, shape[0], NUM_CLASSES, shape[1], seed=int(torch.randint(0, 2**31, (1,), generator=gen)))
    net = net.to(DEVICE).train()
    for param in net.parameters():
        param.requires_grad = False
    loss = torch.tensor(0.0, device=DEVICE)
    for c in range(NUM_CLASSES):
        pool = real_by_class[c]
        img_real = pool[torch.randperm(pool.shape[0], generator=gen)[:BATCH_REAL].to(DEVICE)]
        img_syn = syn[c * IPC:(c + 1) * IPC]
        params = aug.sample_params(1, gen)
        img_real = aug.apply(img_real, params)
        img_syn = aug.apply(img_syn, params)
        output_real = net.embed(img_real).detach()
        output_syn = net.embed(img_syn)
        loss = loss + ((output_real.mean(0) - output_syn.mean(0)) ** 2).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def time_plain(shape, real_images, real_labels, syn_images) -> tuple[list[float], float]:
    real_by_class = [real_images[real_labels == c] for c in range(NUM_CLASSES)]
    syn = syn_images.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([syn], lr=LR_IMG, momentum=MOMENTUM)
    aug = DSA(AugConfig(), flip=shape[0] == 3)
    gen = make_generator(SEED)
    with FlopCounterMode(display=False) as counter:  # also serves as the warm-up step
        plain_step(real_by_class, syn, optimizer, aug, gen, shape)
    seconds = []
    for _ in range(REPEATS):
        synchronize()
        start = time.perf_counter()
        plain_step(real_by_class, syn, optimizer, aug, gen, shape)
        synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds, float(counter.get_total_flops())


def matmul_peak_gflops(dtype: torch.dtype = torch.float32) -> float:
    a = torch.randn(MATMUL_N, MATMUL_N, dtype=dtype, device=DEVICE)
    b = torch.randn(MATMUL_N, MATMUL_N, dtype=dtype, device=DEVICE)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(3))
    return 2 * MATMUL_N ** 3 / best / 1e9


def _timed(fn) -> float:
    synchronize()
    start = time.perf_counter()
    fn()
    synchronize()
    return time.perf_counter() - start


def main() -> None:
    global NUM_CLASSES, IPC, BATCH_REAL, REAL_PER_CLASS, NET, REPEATS, MATMUL_N, ROUNDS, DEVICE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed steps per block")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled variants")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--json", metavar="DIR", help="write the measurements to DIR/dm_step.bench.json")
    args = parser.parse_args()
    REPEATS, ROUNDS, DEVICE = args.repeats, args.rounds, torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device")
    if args.quick:
        NUM_CLASSES, IPC, BATCH_REAL, REAL_PER_CLASS, REPEATS, MATMUL_N = 3, 2, 8, 10, 2, 512
        NET = NetConfig(width=8, depth=3)
    where = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}; ConvNet-{NET.depth} "
          f"w{NET.width}, {NUM_CLASSES} classes, batch_real {BATCH_REAL}, ipc {IPC}, DSA on")
    timings, peaks = [], {"float32": 0.0, "bfloat16": 0.0}
    for shape in SHAPES:
        gen = make_generator(SEED)
        real_images = torch.randn(NUM_CLASSES * REAL_PER_CLASS, *shape, generator=gen).to(DEVICE)
        real_labels = torch.arange(NUM_CLASSES, device=DEVICE).repeat_interleave(REAL_PER_CLASS)
        syn_images = torch.randn(NUM_CLASSES * IPC, *shape, generator=gen).to(DEVICE)
        syn_labels = torch.arange(NUM_CLASSES, device=DEVICE).repeat_interleave(IPC)
        variants = {"ours eager": (False, "float32")}  # name -> (compile, real_dtype)
        if not args.no_compile:
            variants |= {"ours compiled": (True, "float32"), "ours compiled bf16": (True, "bfloat16")}
        times: dict[str, list[float]] = {"plain (reference style)": []} | {name: [] for name in variants}
        peak, peak_bf16, flops = 0.0, 0.0, 0.0
        for _ in range(ROUNDS):
            peak = max(peak, matmul_peak_gflops())
            peak_bf16 = max(peak_bf16, matmul_peak_gflops(torch.bfloat16))
            plain, flops = time_plain(shape, real_images, real_labels, syn_images)
            times["plain (reference style)"] += plain
            for name, (compiled, real_dtype) in variants.items():
                times[name] += time_ours(shape, real_images, real_labels, syn_images, syn_labels,
                                         compiled, real_dtype)
        base = statistics.median(times["plain (reference style)"])
        print(f"\ninput {shape}: {flops / 1e9:.1f} GFLOP per step (conv/matmul, forward + backward); "
              f"matmul {MATMUL_N}^3 peak estimate {peak:.1f} GFLOP/s float32, {peak_bf16:.1f} bfloat16")
        for name, seconds in times.items():
            med = statistics.median(seconds)
            name_peak = peak_bf16 if name.endswith("bf16") else peak
            print(f"  {name:24s} {med * 1e3:9.1f} ms/step (min {min(seconds) * 1e3:.1f}, n={len(seconds)})  "
                  f"x{base / med:5.2f} vs plain  {flops / med / 1e9:6.1f} GFLOP/s "
                  f"({100 * flops / med / 1e9 / name_peak:4.1f}% of its dtype's matmul peak)")
            timings.append(timing(f"input {'x'.join(map(str, shape))}", name, seconds, flops=flops,
                                  dtype="bfloat16" if name.endswith("bf16") else "float32"))
        peaks = {"float32": max(peaks["float32"], peak), "bfloat16": max(peaks["bfloat16"], peak_bf16)}
    if args.json:
        record = make_record(
            "dm_step", title="one DM step at the paper's hyperparameters", size="quick" if args.quick else "full",
            device=DEVICE, baseline="plain (reference style)", unit="step", timings=timings, peaks=peaks,
            settings={"classes": NUM_CLASSES, "ipc": IPC, "batch_real": BATCH_REAL, "net": NET,
                      "rounds": ROUNDS, "repeats": REPEATS, "matmul_n": MATMUL_N, "dsa": True})
        print(f"record: {write_record(record, args.json)}")


if __name__ == "__main__":
    main()
