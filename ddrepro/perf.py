"""What the benchmarks measured and how long the book's pages took: records written, then read back.

A benchmark in ``benchmarks/`` times the engine's way of doing a job beside a
plain way (a reference-style loop, or the slower method the paper compares
against) in one process, so both see the same machine load. With ``--json DIR``
it writes a *record* (:func:`write_record`): the variants' times, the FLOPs one
unit of work does where they were counted, the large-matmul peak of the same
device and dtype measured in the same run (:func:`matmul_peak_gflops`), and the
provenance (device, threads, torch, date, commit, command). The performance
page reads the records (:func:`read_records`) and shows each variant's speed-up
over its baseline (:func:`speedup_frame`), and reads the runner's
``.run.json`` files for the pages' wall times (:func:`page_times`).

Only the benchmarks and the performance page import this module.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

SCHEMA = 1
RECORD_SUFFIX = ".bench.json"
RUN_SUFFIX = ".run.json"           # ddrepro.runner.RUN_SUFFIX (not imported: the runner pulls in papermill)
REPO = Path(__file__).resolve().parent.parent
_REQUIRED = ("schema", "benchmark", "size", "device", "baseline", "timings")


# --------------------------------------------------------------------------- measuring

def synchronize(device: Any) -> None:
    """Wait for queued GPU work, so a wall-clock reading covers it (no-op on a CPU)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(device: Any = "cpu", dtype: Any = None, n: int = 4096, repeats: int = 3) -> float:
    """The machine's practical peak: GFLOP/s of the best of ``repeats`` ``n x n`` matmuls (``2 n^3`` FLOPs).

    A large matmul is the best-tuned kernel torch has on any device, so a
    workload's GFLOP/s over this figure says how much of the device it uses.
    """
    import torch

    dtype = dtype or torch.float32
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b  # first call: kernel selection, allocation
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def git_commit(root: Path = REPO) -> str:
    """``HEAD``'s short hash, with ``+dirty`` when tracked files differ from it; ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=root, capture_output=True).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def device_name(device: Any) -> str:
    """``NVIDIA H200`` for a GPU; ``CPU (<model>, <n> cores)`` for the CPU."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    return f"CPU ({model}, {os.cpu_count()} cores)"


def timing(case: str, name: str, seconds: Iterable[float], *, flops: float | None = None,
           dtype: str = "float32") -> dict[str, Any]:
    """One variant's timed repeats (seconds per unit of work) and the FLOPs one unit does, if counted."""
    seconds = [float(s) for s in seconds]
    if not seconds or min(seconds) <= 0:
        raise ValueError(f"timing {case}/{name}: needs positive times, got {seconds}")
    return {"case": case, "name": name, "seconds": seconds, "flops": None if flops is None else float(flops),
            "dtype": dtype}


def make_record(benchmark: str, *, size: str, device: Any, baseline: str, unit: str,
                timings: Sequence[Mapping[str, Any]], peaks: Mapping[str, float] | None = None,
                settings: Mapping[str, Any] | None = None, title: str = "") -> dict[str, Any]:
    """A benchmark's record; every case must time its ``baseline`` (the ratio's denominator)."""
    import torch

    cases = {t["case"] for t in timings}
    missing = sorted(c for c in cases if not any(t["case"] == c and t["name"] == baseline for t in timings))
    if not timings or missing:
        raise ValueError(f"{benchmark}: baseline {baseline!r} not timed in case(s) {missing or '(none)'}")
    return {
        "schema": SCHEMA, "benchmark": benchmark, "title": title, "size": size,
        "device": str(device), "device_name": device_name(device), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "baseline": baseline, "unit": unit, "peak_gflops": dict(peaks or {}),
        "settings": json.loads(json.dumps(dict(settings or {}), default=str)),
        "timings": [dict(t) for t in timings],
    }


def write_record(record: Mapping[str, Any], out_dir: str | Path) -> Path:
    """``<out_dir>/<benchmark>.bench.json`` (written whole, then renamed: never half a record)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{record['benchmark']}{RECORD_SUFFIX}"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- reading

def is_record(data: Any) -> bool:
    return isinstance(data, dict) and data.get("schema") == SCHEMA and all(k in data for k in _REQUIRED)


def read_records(*roots: str | Path) -> list[dict[str, Any]]:
    """Every benchmark record under ``roots`` (files ``*.bench.json``), with ``path`` added; others skipped."""
    found = []
    for root in roots:
        root = Path(root)
        paths = [root] if root.is_file() else sorted(root.rglob(f"*{RECORD_SUFFIX}")) if root.is_dir() else []
        for path in paths:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if is_record(data):
                found.append({**data, "path": str(path)})
    return found


def failed_benchmarks(folder: str | Path) -> list[tuple[str, str]]:
    """``(benchmark, the last line of its log)`` for each failure ``benchmarks/run_all.py`` recorded in ``folder``."""
    folder = Path(folder)
    try:
        summary = json.loads((folder / "run_all.json").read_text())
    except (OSError, ValueError):
        return []
    failed = []
    for entry in summary.get("benchmarks", []):
        if not entry.get("ok"):
            log = folder / f"{entry['benchmark']}.log"
            lines = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
            failed.append((entry["benchmark"], lines[-1] if lines else f"exit {entry.get('returncode')}"))
    return failed


def speedup_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per variant: median time, speed-up over its case's baseline, GFLOP/s and % of peak.

    The speed-up is ``median(baseline) / median(variant)`` within one record, so
    both medians come from the same run on the same machine.
    """
    rows = []
    for rec in records:
        base = {t["case"]: statistics.median(t["seconds"]) for t in rec["timings"] if t["name"] == rec["baseline"]}
        for t in rec["timings"]:
            med = statistics.median(t["seconds"])
            gflops = t["flops"] / med / 1e9 if t.get("flops") else None
            peak = rec.get("peak_gflops", {}).get(t.get("dtype", "float32"))
            rows.append({
                "benchmark": rec["benchmark"], "size": rec["size"], "device": rec.get("device_name", rec["device"]),
                "case": t["case"], "variant": t["name"], "baseline": rec["baseline"], "unit": rec.get("unit", ""),
                "median_s": med, "n": len(t["seconds"]), "speedup": base[t["case"]] / med,
                "gflops": gflops, "dtype": t.get("dtype", "float32"), "peak_gflops": peak,
                "pct_peak": 100 * gflops / peak if gflops and peak else None,
                "date": rec.get("date", ""), "commit": rec.get("commit", ""),
            })
    return pd.DataFrame(rows, columns=["benchmark", "size", "device", "case", "variant", "baseline", "unit",
                                       "median_s", "n", "speedup", "gflops", "dtype", "peak_gflops",
                                       "pct_peak", "date", "commit"])


def page_times(stage: str | Path, *, results_dir: str = "results") -> pd.DataFrame:
    """The wall time of every executed page in ``stage``'s runner records (``<page>.run.json``).

    A record holds the page's last run (any profile); records kept under
    ``results/`` (copied into the stage) are earlier runs kept on purpose, e.g. on a GPU.
    """
    stage = Path(stage)
    rows = []
    for path in sorted(stage.rglob(f"*{RUN_SUFFIX}")):
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rel = path.relative_to(stage)
        if any(part.startswith(".") or part == "_build" for part in rel.parts):
            continue
        params = (saved.get("key") or {}).get("params") or {}
        overrides = params.get("overrides") or {}
        profile = str(params.get("profile", "?"))
        if overrides:
            profile += " + " + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
        rows.append({"page": str(rel)[: -len(RUN_SUFFIX)], "profile": profile, "status": saved.get("status"),
                     "seconds": saved.get("seconds"),
                     "source": "kept under results/" if rel.parts[0] == results_dir else "this build"})
    return pd.DataFrame(rows, columns=["page", "profile", "status", "seconds", "source"])


# --------------------------------------------------------------------------- showing

def _seconds(value: float) -> str:
    return f"{1e3 * value:.1f} ms" if value < 1 else f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def speedup_display(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`speedup_frame` as a reader's table: times with units, ratios as ``1.90x``, blanks for n/a."""
    def num(value, fmt):
        return "" if value is None or pd.isna(value) else fmt.format(value)

    return pd.DataFrame({
        "benchmark": frame["benchmark"], "size": frame["size"], "device": frame["device"],
        "case": frame["case"], "variant": frame["variant"],
        "median time": [f"{_seconds(v)} / {u}" for v, u in zip(frame["median_s"], frame["unit"])],
        "runs": frame["n"],
        "speed-up": [("baseline" if v == b else f"{x:.2f}x")
                                 for v, b, x in zip(frame["variant"], frame["baseline"], frame["speedup"])],
        "GFLOP/s": [num(g, "{:.1f}") for g in frame["gflops"]],
        "% of peak": [num(p, "{:.1f} %") for p in frame["pct_peak"]],
    })


def record_sentence(record: Mapping[str, Any]) -> str:
    """Where and when a record was measured, and its best variant's speed-up: one Markdown line."""
    rows = speedup_frame([record])
    others = rows[rows["variant"] != record["baseline"]]
    head = (f"**{record['benchmark']}** ({record.get('title') or 'benchmark'}): size `{record['size']}` on "
            f"{record.get('device_name', record['device'])}, {record.get('threads', '?')} torch thread(s), "
            f"torch {record.get('torch', '?')}, {record.get('date', '?')}, commit `{record.get('commit', '?')}`")
    if others.empty:
        return head + "."
    best = others.loc[others["speedup"].idxmax()]
    return (f"{head}; fastest against `{record['baseline']}`: `{best['variant']}`, "
            f"{best['speedup']:.2f}x ({best['case']}).")


TEXT_SUFFIXES = (".txt", ".md", ".csv", ".log")
_ROW = re.compile(r"^\|(.+)\|\s*$")


def provenance_table(readme: str | Path) -> dict[str, dict[str, str]]:
    """The provenance table of ``results/paper/README.md``: file name -> {column: value}."""
    path = Path(readme)
    if not path.is_file():
        return {}
    rows = [[cell.strip() for cell in m.group(1).split("|")]
            for line in path.read_text().splitlines() if (m := _ROW.match(line.strip()))]
    if len(rows) < 2:
        return {}
    head = [h.lower() for h in rows[0]]
    table = {}
    for cells in rows[2:]:  # rows[1] is the |---| rule
        entry = dict(zip(head, cells))
        name = entry.get("file", "").strip("`")
        if name:
            table[name] = entry
    return table


def result_files(folder: str | Path) -> list[dict[str, Any]]:
    """Each file of a results folder (README aside): its text, and its provenance row if the README has one."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    provenance = provenance_table(folder / "README.md")
    out = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name != "README.md"):
        record = None
        if path.name.endswith(RECORD_SUFFIX):
            try:
                record = json.loads(path.read_text())
            except ValueError:
                record = None
        text = path.read_text(errors="replace") if path.suffix in TEXT_SUFFIXES else None
        out.append({"file": path.name, "path": str(path), "provenance": provenance.get(path.name),
                    "record": record if is_record(record) else None, "text": text})
    return out


__all__ = [
    "RECORD_SUFFIX", "SCHEMA", "device_name", "failed_benchmarks", "git_commit", "is_record", "make_record",
    "matmul_peak_gflops", "page_times", "provenance_table", "read_records", "record_sentence", "result_files",
    "speedup_display", "speedup_frame", "synchronize", "timing", "write_record",
]
