"""Batched evaluation (``train_models``) against the plain per-model loop (``ddrepro.reference.train_model_loop``).

K networks trained on one synthetic set: ConvNet-3 width 128 on 100 MNIST-sized
images (10 per class) with DSA, the DC/DSA/DM evaluation step. A few epochs are
timed after a warm-up and the per-epoch cost is extrapolated to the paper's
1000 epochs. Both wall time and process CPU time are printed: on a shared
machine the CPU time is the steadier figure.

It also prints a ceiling: the share of the loop's time spent inside the
convolution kernels (forward and backward, from ``torch.profiler``). Batching
can only remove the rest, so ``loop time / convolution time`` bounds the
speed-up of any engine that does the same float32 arithmetic. On a CPU, where
the loop is already compute-bound, that bound is below 2x at width 128 (CPU
runs only: GPU kernels are asynchronous).

    python benchmarks/bench_eval_batched.py                 # defaults below
    python benchmarks/bench_eval_batched.py width=32 threads=2 engines=unrolled,vmap
    python benchmarks/bench_eval_batched.py device=cuda n_models=20   # the issue's GPU goal (<= 20 s)
    python benchmarks/bench_eval_batched.py json=DIR   # also write DIR/eval_batched.bench.json (ddrepro.perf)

With ``json=DIR`` the FLOPs of the loop's epoch are counted
(``torch.utils.flop_counter``) and a large matmul's GFLOP/s on the same device
is measured, so the record has each case's achieved GFLOP/s against that peak.
"""

import sys
import time

import torch
from torch.profiler import profile
from torch.utils.flop_counter import FlopCounterMode

from ddrepro.augment import DSA
from ddrepro.config import AugConfig, EvalConfig, NetConfig
from ddrepro.perf import make_record, matmul_peak_gflops, timing, write_record
from ddrepro.reference import train_model_loop
from ddrepro.train import train_models

# -- config (override with key=value on the command line) -------------------
n_models = 10
n_images = 100          # 10 per class
image_size = 28
channels = 1
width = 128
depth = 3
epochs = 3              # timed epochs per repeat (100 images -> 1 step per epoch)
repeats = 3
threads = 0             # 0: torch's default
engines = "unrolled,vmap"
dsa = True
paper_epochs = 1000
device = "cpu"
json = ""               # a folder: write the record there
size = "full"           # the record's size label (benchmarks/run_all.py passes quick)
matmul_n = 4096         # the peak estimate's matrix size
# ---------------------------------------------------------------------------
for arg in sys.argv[1:]:
    key, value = arg.split("=", 1)
    if key not in globals():
        raise ValueError(f"unknown config key {key!r}")
    globals()[key] = type(globals()[key])(value) if not isinstance(globals()[key], bool) else value == "True"

CONV_KERNELS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_slow_conv2d_forward",
                "aten::_slow_conv2d_backward", "aten::cudnn_convolution")

if threads:
    torch.set_num_threads(threads)
gen = torch.Generator().manual_seed(0)
images = torch.randn(n_images, channels, image_size, image_size, generator=gen)
labels = torch.arange(10).repeat_interleave(n_images // 10)
net_cfg = NetConfig(width=width, depth=depth)
eval_cfg = EvalConfig(epochs=epochs, n_models=n_models, augment="dsa" if dsa else "none")
aug = DSA(AugConfig(), flip=False) if dsa else None
common = dict(net_cfg=net_cfg, eval_cfg=eval_cfg, num_classes=10, aug=aug, device=device, quiet=True)


def synchronize():
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run_loop():
    for k in range(n_models):
        train_model_loop(images, labels, k, **common)


def make_batched(engine):
    return lambda: train_models(images, labels, n_models=n_models, engine=engine, **common)


def timed(fn):
    synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


cases = {"loop": run_loop} | {f"batched[{e}]": make_batched(e) for e in engines.split(",")}
for fn in cases.values():   # warm-up: allocator, oneDNN primitive caches
    fn()
results = {name: [] for name in cases}
for _ in range(repeats):    # interleaved so that load from other processes hits every case
    for name, fn in cases.items():
        results[name].append(timed(fn))

print(f"{n_models} models, {n_images} images {channels}x{image_size}x{image_size}, ConvNet-{depth} "
      f"width {width}, DSA {dsa}, threads {torch.get_num_threads()}, {epochs} epochs x {repeats} repeats")
base_wall = min(w for w, _ in results["loop"]) / epochs
base_cpu = min(c for _, c in results["loop"]) / epochs
print(f"{'case':<18}{'wall s/epoch':>14}{'cpu s/epoch':>13}{'speedup wall':>14}{'speedup cpu':>13}"
      f"{'paper eval (h)':>16}")
for name, runs in results.items():
    wall = min(w for w, _ in runs) / epochs
    cpu = min(c for _, c in runs) / epochs
    print(f"{name:<18}{wall:>14.3f}{cpu:>13.3f}{base_wall / wall:>13.2f}x{base_cpu / cpu:>12.2f}x"
          f"{wall * paper_epochs / 3600:>16.2f}")

if json:
    with FlopCounterMode(display=False) as counter:
        run_loop()
    flops = counter.get_total_flops() / epochs   # per epoch of all n_models (the same in every case)
    peak = matmul_peak_gflops(device, n=matmul_n)
    timings = [timing("train", name, [w / epochs for w, _ in runs], flops=flops) for name, runs in results.items()]
    record = make_record(
        "eval_batched", title=f"training {n_models} evaluation models on one synthetic set", size=size,
        device=device, baseline="loop", unit="epoch", timings=timings, peaks={"float32": peak},
        settings={"n_models": n_models, "n_images": n_images, "shape": [channels, image_size, image_size],
                  "width": width, "depth": depth, "dsa": dsa, "epochs": epochs, "repeats": repeats,
                  "matmul_n": matmul_n})
    print(f"{flops / 1e9:.2f} GFLOP an epoch; large-matmul peak {peak:.1f} GFLOP/s; "
          f"record: {write_record(record, json)}")

if torch.device(device).type == "cpu":  # GPU kernels run asynchronously: CPU-side times would mislead
    with profile() as prof:
        run_loop()
    events = prof.key_averages()
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONV_KERNELS)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"loop: {100 * conv / total:.0f}% of its time in convolution kernels -> an engine running the "
          f"same convolutions can beat it by at most {total / conv:.2f}x on this device")
