"""``ddrepro``: run chapters, build the book, fetch data.

    ddrepro run CHAPTER [--profile P] [-p key value ...] [--quiet] [--build-dir DIR]
    ddrepro run --list
    ddrepro precompute CHAPTER [--profile P] [-p key value ...] [--shard i/n]
                       [--executor local|ray] [--ray-address ADDR] [--cpus-per-job N] [--quiet]
    ddrepro book [--profile P] [--quiet] [--skip-run] [--build-dir DIR]
    ddrepro data fetch [names ...]
    ddrepro data status
    ddrepro lab [--setup-only] [jupyter lab options ...]

Every user mistake (unknown chapter, profile, parameter or override, a value
of the wrong type or range, missing data) is reported as one line,
``ddrepro: error: ...``, with exit code 2, before any kernel starts.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Sequence

from . import chapters, runner
from .chapters import UserError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as a single line (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    top = _Parser(prog="ddrepro", description="Run and build the ddrepro book.")
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="execute one chapter notebook with papermill")
    run.add_argument("chapter", nargs="?", help="notebook stem or path as listed in _toc.yml")
    run.add_argument("--list", action="store_true", help="list the chapters and exit")
    run.add_argument("--profile", help="smoke, cpu or paper (default: the notebook's, cpu)")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[],
                     metavar=("KEY", "VALUE"),
                     help="a notebook parameter (seed 1) or a dotted profile field (dm.steps 500)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--force", action="store_true", help="execute even if up to date")
    run.add_argument("--build-dir", help="build directory (default $DDREPRO_BUILD or ./_build)")

    pre = sub.add_parser("precompute", help="fill the artifact cache with a chapter's grid of jobs")
    pre.add_argument("chapter", help="notebook stem or path with a registered grid (ddrepro.grids)")
    pre.add_argument("--profile", help="smoke, cpu or paper (default: the notebook's, cpu)")
    pre.add_argument("-p", "--param", nargs=2, action="append", default=[],
                     metavar=("KEY", "VALUE"), help="as for `ddrepro run`")
    pre.add_argument("--shard", default="0/1",
                     help="INDEX/COUNT: run jobs INDEX, INDEX+COUNT, ... (from 0; default 0/1 = all)")
    pre.add_argument("--executor", default="local",
                     help="local (default), ray, or auto (ray on a multi-core machine without a GPU)")
    pre.add_argument("--ray-address", help="an existing Ray cluster (e.g. auto); default: start one")
    pre.add_argument("--cpus-per-job", type=int, default=None,
                     help="CPUs (torch threads) per job; default: 1 on Ray, torch's own locally")
    pre.add_argument("--quiet", action="store_true", help="no progress bars")

    book = sub.add_parser("book", help="execute every chapter and build the site")
    book.add_argument("--profile", default="cpu", help="smoke, cpu or paper (default cpu)")
    book.add_argument("--quiet", action="store_true", help="no progress bars or build log")
    book.add_argument("--skip-run", action="store_true", help="render what is already executed")
    book.add_argument("--build-dir", help="build directory (default $DDREPRO_BUILD or ./_build)")

    data = sub.add_parser("data", help="fetch the data sets or show their status")
    data_sub = data.add_subparsers(dest="action", required=True, parser_class=_Parser)
    fetch = data_sub.add_parser("fetch", help="fetch data sets (all by default)")
    fetch.add_argument("names", nargs="*")
    fetch.add_argument("--quiet", action="store_true")
    data_sub.add_parser("status", help="show which data sets are present")

    # allow_abbrev off: `--s...` must reach jupyter lab, not match --setup-only.
    lab = sub.add_parser("lab", allow_abbrev=False,
                         help="JupyterLab on the book with the ddrepro kernel (ddrepro.lab)",
                         description="Register the ddrepro kernel and JupyterLab settings in this "
                                     "environment, fetch missing data, start JupyterLab with book/ "
                                     "open. Other options (--no-browser, --port N) go to jupyter lab.")
    lab.add_argument("--setup-only", action="store_true",
                     help="register the kernel and settings, fetch data; do not start the server")
    return top


def _cmd_run(args: argparse.Namespace) -> int:
    root = chapters.find_root()
    if args.list:
        for page in chapters.notebooks(root):
            print(f"{page.stem:<24} {page.rel}")
        return 0
    if not args.chapter:
        raise UserError("run needs a CHAPTER (see `ddrepro run --list`).")
    page = chapters.resolve_chapter(args.chapter, root)
    params = chapters.resolve_params(page, args.profile, args.param, args.quiet)
    chapters.fetch_data(chapters.profile_datasets(params), quiet=args.quiet)  # no-op when present
    build = chapters.build_dir(root, args.build_dir)
    stage = chapters.stage_dir(build)
    runner.stage_sources(root, stage)
    result = runner.execute(page, params, stage, quiet=args.quiet, force=args.force)
    if result.status == "failed":
        print(f"ddrepro: {page.rel} failed at {result.failure.describe()}", file=sys.stderr)
        print(f"ddrepro: executed copy with the traceback: {result.output}", file=sys.stderr)
        return 1
    print(f"{page.rel}: {result.status} -> {result.output}")
    return 0


def _executor(args: argparse.Namespace) -> object:
    """The executor the flags ask for, checked (and Ray imported) before any compute."""
    from .executor import EXECUTOR_NAMES, get_executor

    if args.executor not in EXECUTOR_NAMES:
        raise UserError(f"unknown executor {args.executor!r}; known: {', '.join(EXECUTOR_NAMES)}.")
    if args.executor != "ray" and args.ray_address:
        raise UserError("--ray-address needs --executor ray.")
    options = {"cpus_per_job": args.cpus_per_job} if args.cpus_per_job is not None else {}
    if args.executor == "auto" and options:
        raise UserError("--cpus-per-job needs --executor local or ray.")
    if args.executor == "ray":
        options["address"] = args.ray_address
    try:
        return get_executor(args.executor, **options)
    except (ImportError, ValueError) as err:
        raise UserError(str(err)) from None


def _cmd_precompute(args: argparse.Namespace) -> int:
    import time

    from .artifacts import cache_root
    from .executor import JobError, parse_shard
    from .grids import GRIDS
    from .profiles import get_profile
    from .staged import run_staged

    root = chapters.find_root()
    page = chapters.resolve_chapter(args.chapter, root)
    if page.stem not in GRIDS:
        raise UserError(f"chapter {page.stem!r} has no precompute grid; chapters with one: "
                        f"{', '.join(GRIDS.names())}.")
    try:
        index, count = parse_shard(args.shard)
    except ValueError as err:
        raise UserError(str(err)) from None
    executor = _executor(args)
    # The notebook's parameters as `ddrepro run` would inject them, over its defaults.
    params = {**chapters.notebook_parameters(page.source),
              **chapters.resolve_params(page, args.profile, args.param, args.quiet)}
    prof = get_profile(params.get("profile", "cpu"), params.get("overrides") or {})
    chapters.fetch_data(prof.data.datasets, quiet=args.quiet)  # no-op when present
    start = time.perf_counter()
    try:
        # quiet only silences bars (no cache key has it): unset, $DDREPRO_QUIET decides per process.
        # A staged grid (ddrepro.staged.run_staged) runs stage by stage; with --shard, each stage's
        # new jobs are sharded and a shard also runs the earlier jobs its later stages read.
        done = run_staged(page.stem, prof, seed=params.get("seed", 0), device=params.get("device", "auto"),
                          quiet=True if params.get("quiet") else None, executor=executor,
                          shard_of=(index, count))
    except JobError as err:
        traceback.print_exception(err.__cause__ or err, file=sys.stderr)
        print(f"ddrepro: {err}", file=sys.stderr)
        return 1
    stages = f" in {len(done.stages)} stages" if len(done.stages) > 1 else ""
    print(f"precompute {page.stem}: {len(done.ran)} of {done.jobs} jobs run{stages} (shard {index}/{count}, "
          f"{args.executor}) in {time.perf_counter() - start:.1f}s; cache {cache_root().resolve()}")
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    root = chapters.find_root()
    build = chapters.build_dir(root, args.build_dir)
    return runner.run_book(root, build, profile=args.profile, quiet=args.quiet,
                           skip_run=args.skip_run)


def _cmd_data(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        chapters.fetch_data(args.names, quiet=args.quiet)
        return _print_status()
    return _print_status()


def _print_status() -> int:
    from .data import status

    rows = status()
    width = max([len(r["name"]) for r in rows] + [4])
    print(f"{'name':<{width}}  present  checksum  path")
    for r in rows:
        check = {True: "ok", False: "BAD", None: "-"}.get(r.get("checksum_ok"), "-")
        present = "yes" if r.get("present") else "no"
        detail = f"  ({r['detail']})" if r.get("detail") else ""
        print(f"{r['name']:<{width}}  {present:<7}  {check:<8}  {r.get('path')}{detail}")
    return 0


def _cmd_lab(args: argparse.Namespace) -> int:
    from . import lab

    return lab.main(chapters.find_root(), args.jupyter_args, setup_only=args.setup_only)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = _parser()
        # Only `lab` takes options it does not know: they are jupyter lab's.
        args, unknown = parser.parse_known_args(argv)
        if unknown and args.command != "lab":
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.jupyter_args = unknown
        handler = {"run": _cmd_run, "precompute": _cmd_precompute, "book": _cmd_book,
                   "data": _cmd_data, "lab": _cmd_lab}[args.command]
        return handler(args)
    except UserError as err:
        print(f"ddrepro: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ddrepro: interrupted; rerun the same command to resume.", file=sys.stderr)
        return 130


__all__ = ["main"]
