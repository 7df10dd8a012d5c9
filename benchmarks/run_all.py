"""Run the speed benchmarks one after another and collect their records in one folder.

Each benchmark runs in its own process (so one's memory and compiled code
cannot help or hurt the next) with ``--json OUT``: it writes
``OUT/<name>.bench.json`` (``ddrepro.perf``), and its printed report goes to
``OUT/<name>.log``. ``OUT/run_all.json`` says what ran, with which command,
how long it took and whether it succeeded. A failed benchmark does not stop
the others; the exit code is 1 if any failed.

Sizes: ``--quick`` the benchmarks' tiny sizes (a check that they run: a few
minutes on a 2-core machine, a minute of it starting a local Ray cluster; the
numbers are not the engine's speed at scale), otherwise their real sizes (the
paper setting of a DM step, the ``cpu`` profile's sizes elsewhere; tens of
minutes on a 2-core machine; with ``--device cuda`` the paper profile where the
benchmark has one; ``shadows`` and ``grid_executors`` always run on the CPU).
``bench_mmd_scale.py`` measures a gradient's scale, not a speed: it is not run here.

    python benchmarks/run_all.py --quick --out /tmp/bench        # tiny sizes
    python benchmarks/run_all.py --out results/benchmarks_cpu     # real sizes on this CPU
    python benchmarks/run_all.py --device cuda --out results/benchmarks_h200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("dm_step", "eval_batched", "shadows", "ead_mtt_dm", "poison_attacks", "grid_executors")


def plan(quick: bool, device: str = "cpu", ray: bool = False) -> list[tuple[str, list[str]]]:
    """``(name, arguments after the script)`` for each benchmark, writing no record yet (no ``--json``)."""
    cuda = device.startswith("cuda")
    dev = ["--device", device]
    if quick:
        return [
            ("dm_step", ["--quick", *dev]),
            ("eval_batched", ["width=8", "n_models=2", "epochs=1", "repeats=1", "size=quick", "matmul_n=1024",
                              f"device={device}"]),
            ("shadows", ["--quick"] + ([] if ray else ["--no-ray"])),           # CPU only
            ("ead_mtt_dm", ["--quick", *dev]),
            ("poison_attacks", ["--quick", *dev]),
            ("grid_executors", ["--quick"]),                                     # CPU: cores side by side
        ]
    return [
        ("dm_step", dev),
        ("eval_batched", [f"device={device}"] + (["n_models=20"] if cuda else [])),
        ("shadows", [] if ray else ["--no-ray"]),
        ("ead_mtt_dm", ["--profile", "paper", "--ipc", "10", "--real-per-class", "6000", *dev] if cuda
         else ["--profile", "cpu", "--ipc", "10", *dev]),
        ("poison_attacks", ["--profile", "paper", "--pretrain-epochs", "4", *dev] if cuda
         else ["--profile", "cpu", *dev]),
        ("grid_executors", ["--profile", "cpu"]),
    ]


def command(name: str, args: list[str], out: Path) -> list[str]:
    """The full command line of benchmark ``name`` writing its record to ``out``."""
    script = str(HERE / f"bench_{name}.py")
    if name == "eval_batched":  # key=value configuration
        return [sys.executable, script, *args, f"json={out}"]
    return [sys.executable, script, *args, "--json", str(out)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the records, logs and run_all.json")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the benchmarks run, fast")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--ray", action="store_true", help="include bench_shadows' local Ray cluster variant")
    parser.add_argument("--only", help="comma-separated subset of " + ", ".join(BENCHMARKS))
    parser.add_argument("--timeout", type=float, default=None, help="seconds per benchmark (default: none)")
    args = parser.parse_args(argv)
    chosen = BENCHMARKS if not args.only else tuple(args.only.split(","))
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # run from a page, the kernel's scorecard path must not reach the benchmarks' own ddrepro runs
    env = {k: v for k, v in os.environ.items() if k != "DDREPRO_SCORECARD"}
    summary = []
    for name, bench_args in plan(args.quick, args.device, args.ray):
        if name not in chosen:
            continue
        cmd = command(name, bench_args, out)
        (out / f"{name}.bench.json").unlink(missing_ok=True)  # a failed run must not leave an old record
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True, timeout=args.timeout,
                                  env=env)
            rc, log = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as err:
            rc, log = 124, f"{err.stdout or ''}{err.stderr or ''}\ntimed out after {args.timeout} s"
        seconds = time.perf_counter() - start
        (out / f"{name}.log").write_text(log if isinstance(log, str) else log.decode(errors="replace"))
        ok = rc == 0 and (out / f"{name}.bench.json").is_file()
        summary.append({"benchmark": name, "ok": ok, "returncode": rc, "seconds": round(seconds, 2),
                        "command": " ".join(["python", f"benchmarks/bench_{name}.py", *bench_args])})
        print(f"{name:16s} {'ok' if ok else f'FAILED (exit {rc}, see {name}.log)'} in {seconds:.1f} s", flush=True)
    (out / "run_all.json").write_text(json.dumps(
        {"quick": args.quick, "device": args.device, "benchmarks": summary}, indent=1))
    return 0 if all(s["ok"] for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
