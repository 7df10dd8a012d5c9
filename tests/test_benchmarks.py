"""The benchmarks run (at tiny sizes): they stay in step with the engine they measure.

Speed goals are checked by running the benchmarks themselves, never by timing here.
"""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("args", [
    ["benchmarks/bench_dm_step.py", "--quick"],
    ["benchmarks/bench_eval_batched.py", "width=8", "n_models=2", "epochs=1", "repeats=1"],
    ["benchmarks/bench_shadows.py", "--quick", "--no-ray"],
    ["benchmarks/bench_mmd_scale.py", "--quick"],
    ["benchmarks/bench_ead_mtt_dm.py", "--quick"],
    ["benchmarks/bench_poison_attacks.py", "--quick"],
])
def test_benchmark_runs_and_reports(args):
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "x" in done.stdout and done.stdout.strip()  # a ratio was printed
