"""Staged grids (``ddrepro.staged.run_grid``): a later stage's jobs built from earlier results.

A staged builder takes ``done`` (the results so far, by job name) and names every job it can
from them; ``run_grid`` builds, runs what is new, and builds again until nothing is new. Local
executor only (Ray's equivalence is tested for flat grids in ``test_executor.py``).
"""

from __future__ import annotations

from typing import Any, Mapping

import pytest

from ddrepro.executor import Job, LocalExecutor, shard
from ddrepro.staged import is_staged, run_grid, run_staged

CALLS: list[str] = []  # what the job functions below were called with, in order


def score(*, x: int, tag: str) -> int:
    """A module-level job (jobs must be importable by name): a known, non-monotone score."""
    CALLS.append(tag)
    return -(x - 2) ** 2


def train(*, x: int, factor: int, tag: str) -> int:
    CALLS.append(tag)
    return x * factor


GRID_X = (0, 1, 2, 3, 4)


def stage_one() -> list[Job]:
    tune = [Job(score, {"x": x, "tag": f"tune/x={x}"}, name=f"tune/x={x}") for x in GRID_X]
    # a stage-1 job no later choice reads (as the starts on Chapter 5's page)
    return tune + [Job(train, {"x": 7, "factor": 1, "tag": "side"}, name="side")]


def chosen(done: Mapping[str, Any]) -> int:
    """The stage-2 argument: the x of the best tuning score (first on a tie)."""
    scores = {x: done[f"tune/x={x}"] for x in GRID_X}
    return max(scores, key=lambda x: (scores[x], -GRID_X.index(x)))


def stage_two(best: int) -> list[Job]:
    return [Job(train, {"x": best, "factor": f, "tag": f"final/factor={f}"}, name=f"final/factor={f}")
            for f in (1, 10, 100)]


def two_stage(prof, *, seed, device, quiet, done: Mapping[str, Any]) -> list[Job]:
    jobs = stage_one()
    if all(job.name in done for job in jobs):
        jobs += stage_two(chosen(done))
    return jobs


def one_stage(prof, *, seed, device, quiet) -> list[Job]:
    return stage_one()


def never_done(prof, *, seed, device, quiet, done: Mapping[str, Any]) -> list[Job]:
    """Invents one more job every time it is built: never converges."""
    return [Job(train, {"x": i, "factor": 1, "tag": f"n{i}"}, name=f"n{i}") for i in range(len(done) + 1)]


def forgetful(prof, *, seed, device, quiet, done: Mapping[str, Any]) -> list[Job]:
    """Names stage 2 instead of stage 1 once stage 1 is done: takes jobs back."""
    return stage_two(0) if done else stage_one()


def run(builder, **kwargs):
    CALLS.clear()
    return run_grid(builder, None, seed=0, device="cpu", quiet=True, executor=LocalExecutor(), **kwargs)


def test_a_two_stage_grid_gives_what_running_the_stages_by_hand_gives():
    got = run(two_stage)
    executor = LocalExecutor()
    first = stage_one()
    by_hand = dict(zip([j.name for j in first], executor.map(first, quiet=True)))
    second = stage_two(chosen(by_hand))
    by_hand |= dict(zip([j.name for j in second], executor.map(second, quiet=True)))
    assert got == by_hand
    assert list(got) == list(by_hand)  # in the builder's order
    # the second stage used the choice made on the first: x = 2 scores best (0)
    assert got["final/factor=10"] == 20
    assert is_staged(two_stage) and not is_staged(one_stage)


def test_each_job_runs_once_and_the_stages_are_reported():
    CALLS.clear()
    done = run_staged(two_stage, None, seed=0, device="cpu", quiet=True, executor="local")
    assert sorted(CALLS) == sorted(j.name for j in stage_one() + stage_two(2))
    assert [len(stage) for stage in done.stages] == [6, 3] and done.jobs == 9
    assert set(done.ran) == set(done.results)


def test_a_one_stage_builder_is_run_once_as_before():
    got = run(one_stage)
    jobs = one_stage(None, seed=0, device="cpu", quiet=True)
    assert got == dict(zip([j.name for j in jobs], LocalExecutor().map(jobs, quiet=True)))
    assert len(CALLS) == 2 * len(jobs)  # run() once, and the comparison once


def test_a_builder_that_keeps_inventing_jobs_raises():
    with pytest.raises(RuntimeError, match="still names new jobs after 4 stages"):
        run_staged(never_done, None, seed=0, device="cpu", quiet=True, executor="local", max_stages=4)


def test_a_builder_that_takes_jobs_back_raises():
    with pytest.raises(ValueError, match="must name every job it named before"):
        run(forgetful)


@pytest.mark.parametrize("count", [2, 3])
def test_shards_cover_every_job_and_each_runs_only_the_earlier_jobs_its_choice_reads(count):
    whole = run(two_stage)
    results, side_runs = {}, 0
    for index in range(count):
        got = run(two_stage, shard=(index, count))
        results |= got
        # the stage-2 choice is the unsharded one in every shard
        assert all(got[name] == whole[name] for name in got)
        # every tuning result (read by the choice) is here; "side" only in its own shard
        assert all(f"tune/x={x}" in got for x in GRID_X)
        side_runs += CALLS.count("side")
        mine = {j.name for j in shard(stage_one(), index, count)} | {
            j.name for j in shard(stage_two(2), index, count)}
        assert {n for n in got if not n.startswith("tune/")} == {n for n in mine if not n.startswith("tune/")}
    assert results == whole
    assert side_runs == 1
