"""The ``pml`` command: list, run and build chapters (in process or on a Dask cluster), plan and compute their tasks,
pack and check results archives, check claims, run benchmarks and the browser check; fit your own data (``pml fit``,
``pml predict``, ``pml guide``)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import select
import sys

from pml import paths
from pml.book import context, execute, params, runner

BENCHMARKS = {
    "simplex": "pml.benchmarks.simplex",
    "batched": "pml.benchmarks.batched",
    "bfgs": "pml.benchmarks.bfgs",
    "precision": "pml.benchmarks.precision",
    "fit": "pml.benchmarks.fit",
    "step": "pml.benchmarks.step",
}


def _cmd_list(args) -> int:
    profiles = {p: params.load_profile(p) for p in params.PROFILES}
    for stem in params.chapters():
        print(stem)
        for name, default in params.chapter_parameters(stem).items():
            if name == "profile":
                continue
            per_profile = "  ".join(f"{p}={profiles[p].get(stem, {}).get(name, default)!r}" for p in params.PROFILES)
            print(f"    {name:<22} default={default!r:<24} {per_profile}")
    print("execution settings (options of pml run/book/compute, not parameters; they never change results): "
          + ", ".join(f"--{name} (default {value})" for name, value in context.EXECUTION_DEFAULTS.items()))
    return 0


def _overrides(pairs) -> dict:
    return dict(params.parse_assignment(p) for p in pairs or [])


def _steps(stems, profile, overrides=None, only=None, execution=None) -> dict:
    """chapter -> step -> sweep, for the chapters that have steps."""
    return {stem: steps for stem in stems
            if (steps := params.chapter_steps(stem, profile, overrides, only, execution))}


def _precompute(stems, profile, overrides, client, execution=None) -> None:
    """Submit every task of the chapters' steps to the cluster in one go (largest first) and wait for them, so
    the notebooks only assemble and draw; chapters without steps compute as their notebooks run."""
    from pml.engine import cluster, materialize, plan

    print(f"cluster: {cluster.describe(client)}", flush=True)
    steps = _steps(stems, profile, overrides, execution=execution)
    if steps:
        print(f"computing the tasks of {', '.join(steps)} ({profile}) on the cluster ...", flush=True)
        print(f"  {materialize(plan.tasks_of(steps), client=client)}", flush=True)


def _execution(args) -> dict:
    """``--threads``/``--device`` checked; a CUDA device must exist unless the tasks run on a cluster."""
    execution = params.check_execution(args.threads, args.device)
    if execution["device"] != "cpu" and args.workers is None and args.scheduler is None:
        import torch

        if not torch.cuda.is_available():
            raise params.BookError(f"--device {execution['device']}: torch sees no CUDA device on this machine; "
                                   "use --device cpu, or run the tasks on a cluster with GPUs (--scheduler)")
    return execution


def _cmd_run(args) -> int:
    from pml.engine import cluster

    stem = params.check_chapter(args.chapter)
    overrides = _overrides(args.param)
    params.ChapterParams.resolve(stem, args.profile, overrides)  # bad parameters fail before a cluster starts
    execution = _execution(args)
    _check_build_cost(args, [stem], overrides, f"pml run {stem} --profile {args.profile}{_p_args(overrides)}")
    with cluster.session(args.workers, args.scheduler) as client:
        if client is not None:
            _precompute([stem], args.profile, overrides, client, execution)
        result = execute.run_chapter(stem, args.profile, overrides, stored=args.stored, **execution)
    run = result.run or result.profile
    stored = " from stored results only (nothing computed)" if args.stored else ""
    print(f"chapter {result.chapter} ({run}) executed{stored} in {result.seconds:.1f} s")
    if result.overrides:
        print(f"  with overrides: {context.describe_overrides(result.overrides)} (outputs under {run}/; "
              f"the {result.profile} profile's outputs are unchanged)")
    print(f"  parameters: {context.show(result.parameters)}")
    print(f"  executed notebook: {result.notebook}")
    print(f"  figures: {result.figures}")
    print(f"  results cache: {paths.results_dir()}")
    claims_hint = f" (pml claims --profile {result.profile}{_p_args(result.overrides)})" if result.claims else ""
    print(f"  claims: {result.claims or 'this chapter checks no claims'}{claims_hint}")
    return 0


def _p_args(overrides) -> str:
    return "".join(f" -p '{name}={context.show(value)}'" for name, value in (overrides or {}).items())


def _cmd_book(args) -> int:
    from pml.engine import cluster

    params.load_profile(args.profile)
    execution = _execution(args)
    _check_build_cost(args, params.chapters(), {}, f"pml book --profile {args.profile}")
    with cluster.session(args.workers, args.scheduler) as client:
        if client is not None:
            _precompute(params.chapters(), args.profile, {}, client, execution)
        html = runner.build(args.profile, stored=args.stored, **execution)
    print(f"\nOpen the book: {html / 'index.html'}")
    table, ok = runner.summary(args.profile)
    counts = ", ".join(f"{n} {verdict}" for verdict, n in table.counts().items())
    print(f"Claims at profile {args.profile}: {counts or 'none'} (details: pml claims --profile {args.profile})")
    return 0


def _check_build_cost(args, stems, overrides, command) -> None:
    """``--stored`` computes nothing (so no cluster); without it or ``--yes``, a build that would compute more than
    :data:`pml.book.runner.COMPUTE_LIMIT_CPU_HOURS` stops first (:func:`pml.book.runner.check_cost`)."""
    if args.stored and (args.workers is not None or args.scheduler is not None):
        raise params.BookError("--stored computes nothing, so --workers/--scheduler have nothing to run; use one or "
                               "the other")
    if not args.stored and not args.yes:
        runner.check_cost(stems, args.profile, overrides, command=command)


def _cmd_plan(args) -> int:
    from pml.engine import plan

    stems = [params.check_chapter(c) for c in args.chapter] if args.chapter else params.chapters()
    overrides = _overrides(args.param)
    if overrides and len(stems) != 1:
        raise params.BookError("-p/--param needs one CHAPTER")
    steps = _steps(stems, args.profile, overrides)
    without = [s for s in stems if s not in steps]
    rows = plan.plan(steps)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        if without:
            print(f"pml: note: chapters without steps (nothing to plan): {', '.join(without)}", file=sys.stderr)
    else:
        print(plan.format_plan(rows, args.profile, without))
    return 0


def _cmd_compute(args) -> int:
    from pml.engine import cluster, materialize, plan

    stem = params.check_chapter(args.chapter)
    overrides = _overrides(args.param)
    steps = params.chapter_steps(stem, args.profile, overrides, args.step, _execution(args))  # unknown: exit 2
    if not steps:
        print(f"chapter {stem} has no steps ({params.experiments_module(stem)} defines no steps(params)): nothing to "
              f"compute; its notebook computes what it needs when it runs (`pml run {stem}`)")
        return 0
    with cluster.session(args.workers, args.scheduler) as client:
        where = cluster.describe(client) if client is not None else "this process (serial)"
        print(f"{stem} ({args.profile}), steps {', '.join(steps)}: computing on {where} ...", flush=True)
        report = materialize(plan.tasks_of({stem: steps}), client=client if client is not None else False)
    print(report)
    return 0


def _cmd_results(args) -> int:
    from pml.book import shipped
    from pml.engine import archive, graph

    if args.action == "pack":
        _check_out(args.out, "results.tar.gz")
        stems = [params.check_chapter(c) for c in args.chapter] if args.chapter else params.chapters()
        by_step = {f"{stem}/{name}": graph(sweep.tasks())
                   for stem, steps in _steps(stems, args.profile, only=args.step).items()
                   for name, sweep in steps.items()}
        if not by_step:
            raise params.BookError(f"no chapter among {', '.join(stems)} has steps: nothing to pack")
        report = archive.pack(by_step, args.out, profile=args.profile)
        print(f"{report.entries} task results of profile {args.profile} ({len(by_step)} steps) written to "
              f"{report.path} ({report.size / 1e6:.3g} MB)")
        if report.missing:
            print(f"pml: note: {len(report.missing)} tasks of these steps are not computed yet and are not in the "
                  f"archive (first: {report.missing[0]}); `pml plan --profile {args.profile}` shows which",
                  file=sys.stderr)
        return 0
    if args.action == "unpack":
        return _unpack(_archive_args(args), args.allowed_signers)
    if args.action == "sign":
        from pml.engine import provenance

        print(f"signature written to {provenance.sign_archive(args.file, args.key)}")
        return 0
    if args.action == "status":
        if args.markdown:
            print(shipped.archive_table())
            return 0
        return _results_status(params.check_profile(args.profile))
    if args.shipped:
        if args.file:
            raise params.BookError("give an archive or --shipped, not both")
        verdicts = shipped.verify_sample(seed=args.seed, time_limit=args.time_limit or 300.0)
        return _verdicts(verdicts)
    if not args.file:
        raise params.BookError("give the archive to verify, or --shipped for those of results/")
    if args.sample < 1:
        raise params.BookError(f"--sample must be at least 1, got {args.sample}")
    verdicts = archive.verify(args.file, sample=args.sample, time_limit=args.time_limit, seed=args.seed or 0)
    return _verdicts(verdicts)


def _archive_args(args) -> list[str]:
    """The archives an unpack names: its files, or with --shipped those of results/."""
    from pml.book import shipped

    if args.shipped and args.file:
        raise params.BookError("give archives or --shipped, not both")
    files = [str(p) for p in shipped.archives()] if args.shipped else list(args.file)
    if not files:
        raise params.BookError(f"no archive to unpack ({'results/ holds none' if args.shipped else 'name one'})")
    return files


def _unpack(files: list[str], allowed_signers: str | None = None) -> int:
    from pml.engine import archive, provenance

    rc = 0
    for file in files:
        signer = provenance.check_signature(file, allowed_signers) if allowed_signers else None
        report = archive.unpack(file, signer=signer)
        print(f"{file} (profile {report.profile}): {report.added} entries added, {report.present} already "
              f"present, {report.replaced} corrupt entries replaced, {len(report.conflicts)} conflicts"
              + (f"; signed by {signer}" if signer else "; unverified until `pml results verify` recomputes them"))
        if report.stale:
            print(f"pml: note: {report.stale} entries were computed from other source code of the modules their "
                  "tasks import; this checkout will not use them", file=sys.stderr)
        if report.conflicts:
            print("pml: error: stored results differ from the archive's; the stored ones were kept:\n  "
                  + "\n  ".join(report.conflicts), file=sys.stderr)
            rc = 1
    return rc


def _results_status(profile: str) -> int:
    from pml.book import shipped

    rows, stale = shipped.status(profile=profile)
    print(f"{'step':<36} {'tasks':>6} {'shipped':>8} {'verified':>9} {'CPU-h missing':>14}")
    for r in rows:
        print(f"{r.step:<36} {r.tasks:>6} {r.shipped:>8} {r.verified:>9} {r.missing_cpu_hours:>14.3g}")
    print(f"{len(shipped.archives())} archives in {shipped.shipped_dir()}; {len(stale)} stale entries (their keys "
          "are no task of this checkout: never used)")
    for e in stale[:20]:
        print(f"  stale: {e.archive.name}: {e.entry['task']} {e.entry['key'][:12]} ({', '.join(e.steps)})")
    return 0


def _verdicts(verdicts) -> int:
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    print(f"\n{len(verdicts)} tasks: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    bad = [v for v in verdicts if v.bad]
    if bad:
        print(f"pml: error: {len(bad)} recomputed tasks do not reproduce the archive", file=sys.stderr)
        return 1
    return 0


def _cmd_claims(args) -> int:
    from pml.book import claims

    overrides = _overrides(args.param)
    run = execute.run_name(args.profile, overrides)
    if overrides and not paths.claims_dir(run).is_dir():
        raise params.BookError(f"no chapter ran at profile {args.profile} with overrides "
                               f"{context.describe_overrides(overrides)} (no {paths.claims_dir(run)}); runs with "
                               f"overrides: {', '.join(_override_runs(args.profile)) or 'none'}")
    table, ok = runner.summary(args.profile, run=run)
    ran = claims.runs(args.profile, run=run)
    inputs = claims.provenance_of(args.profile, run=run)  # where each claim's task results came from
    claims.with_inputs(table, args.profile, run=run)
    if args.json:
        rows = []
        for v in table.verdicts:
            row = v.to_dict()
            row.update({key: ran.get(v.claim.chapter, {}).get(key) for key in ("run", "overrides", "parameters")})
            row["inputs"] = {**inputs.get(v.claim.id, {}), "label": table.inputs[v.claim.id]}
            rows.append(row)
        print(json.dumps(rows, indent=2))
    else:
        print(table)
        counts = ", ".join(f"{n} {verdict}" for verdict, n in table.counts().items())
        where = f"profile {args.profile}" + (f" with overrides {context.describe_overrides(overrides)}" if overrides
                                             else "")
        print(f"\n{len(table.verdicts)} claims at {where}: {counts}")
        print(claims.inputs_summary(args.profile, run=run))
        print("Parameters each chapter ran with (beside the paper's values; `pml list` shows all):")
        for chapter, info in ran.items():
            print(f"  {chapter}: {_ran_with(chapter, args.profile, info)}")
        others = [r for r in _override_runs(args.profile) if r != run]
        if others:
            print(f"Runs with command-line overrides, not counted above: {', '.join(others)} "
                  f"(see them with pml claims --profile {args.profile} -p NAME=VALUE ...)")
    if not ok:
        print(
            "claims checkable at this profile are not reproduced (without a known deviation) or their chapter "
            "results are missing",
            file=sys.stderr,
        )
    return 0 if ok else 1


def _override_runs(profile: str) -> list[str]:
    folder = paths.claims_dir(profile).parent
    return sorted(p.name for p in folder.glob(f"{profile}+*") if p.is_dir()) if folder.is_dir() else []


def _ran_with(chapter: str, profile: str, info: dict) -> str:
    """The overrides, then the values that differ from the paper's, of one chapter's recorded run."""
    overrides = info.get("overrides") or {}
    text = (f"profile {profile} with overrides {context.describe_overrides(overrides)}" if overrides
            else f"profile {profile}, no overrides")
    recorded = info.get("parameters")
    if recorded is None:
        return text + " (this claims file records no parameters: rerun the chapter)"
    try:
        paper = params.chapter_parameters(chapter)
    except params.BookError:
        paper = {}
    changed = {k: v for k, v in recorded.items()
               if k != "profile" and k not in overrides and k in paper and v != context.plain(paper[k])}
    if changed:
        text += "; from the profile: " + context.describe_overrides(changed)
    execution = info.get("execution")
    return text + (f"; execution: {context.describe_overrides(execution)}" if execution else "")


def _cmd_bench(args) -> int:
    module = importlib.import_module(BENCHMARKS[args.name])
    takes = inspect.signature(module.run).parameters
    kwargs = {"progress": sys.stderr.isatty()} if "progress" in takes else {}
    if args.time_limit is not None:
        if "time_limit" not in takes:
            return _fail(f"--time-limit is not an option of `pml bench {args.name}`")
        kwargs["time_limit"] = args.time_limit
    if args.quick:
        if "quick" not in takes:
            return _fail(f"--quick is not an option of `pml bench {args.name}`")
        kwargs["quick"] = True
    result = module.run(**kwargs)
    print(json.dumps(result, indent=2, default=float) if args.json else module.format(result))
    return 0


def _cmd_check_html(args) -> int:
    from pml.book import htmlcheck

    argv = [str(paths.html_dir())]
    for stem in params.chapters():
        n_figures = params.source_path(stem).read_text().count("```{glue:figure}")
        if n_figures:  # every figure directive must show up as an image
            argv += ["--min-images", f"book/{stem}.html={n_figures}"]
    argv += ["--screenshots"] * args.screenshots + (["--chromium", args.chromium] if args.chromium else [])
    return htmlcheck.main(argv)


def _seconds(text: str) -> float:
    """argparse type of --time-limit: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of seconds (e.g. 600), got {text!r}")
    return value


def _check_out(out, example: str) -> None:
    """Refuse an ``--out`` that cannot be written before any work (BookError: one line, exit 2): an empty name, a
    folder, an existing path that is not a regular file (a link, a FIFO, a device), a folder that cannot take a
    file (:func:`pml.fitting.commands.output_problem`); a missing folder is created by the writer."""
    from pml.fitting.commands import output_problem

    problem = output_problem(out, example=example, make_folder=True)
    if problem:
        raise params.BookError(problem)


def _os_error(exc: OSError) -> str:
    """``PATH: what went wrong`` (the errno's text) of an OSError, one line."""
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return what
    return f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "") + f": {what}"


def _stdout_closed() -> bool:
    """Whether standard output is a pipe whose reader has gone (``pml list | head -1``)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no real file behind sys.stdout
        return False


def _end_quietly() -> int:
    """Standard output was closed early: point it at /dev/null (so that the interpreter's last flush does not fail
    again) and exit like a process that SIGPIPE ended (128 + 13), without a word."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass
    return 141


def _fail(message: str) -> int:
    print(f"pml: error: {message}", file=sys.stderr)
    return 2


def _cmd_guide(args) -> int:
    from pml.fitting import guide

    if args.d is None and args.rows is None:
        print("User's Guide to Precision (paper Fig. 10): the rules `pml fit --method auto` applies, first match wins")
        print(guide.rules_table())
        return 0
    if args.d is None or args.rows is None:
        return _fail("give both --d and --rows, or neither")
    try:
        choice = guide.choose(args.d, args.rows, smooth=not args.not_smooth)
    except ValueError as exc:
        return _fail(str(exc))
    promise = "none" if choice.expected_rel_rmse is None else f"<= {choice.expected_rel_rmse:.0e} relative RMSE"
    print(f"rule {choice.rule.key}: {', '.join(choice.methods)} (promise: {promise})\n{choice.reason}")
    return 0


def _cmd_fit(args) -> int:
    from pml.fitting import commands

    return commands.fit_file(args.data, args.target, args.out, inputs=args.inputs, method=args.method,
                             validation=args.validation, seed=args.seed, refit=args.refit,
                             smooth=not args.not_smooth, quiet=args.quiet, as_json=args.json,
                             time_limit=args.time_limit, transform=args.transform)


def _cmd_predict(args) -> int:
    from pml.fitting import commands

    return commands.predict_file(args.model, args.data, args.out)


def _cluster_options(parser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--workers", type=int, metavar="N",
                       help="run tasks on a Dask cluster of N single-threaded processes on this machine")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run tasks on a running Dask cluster (default: $PML_SCHEDULER; see README)")


def _execution_options(parser) -> None:
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch and BLAS threads per task (default 1: small networks train fastest on one; 0: "
                             "torch's default); never changes results")
    parser.add_argument("--device", metavar="DEVICE",
                        help="torch device of the network tasks: cpu (default), cuda or cuda:N; never changes which "
                             "results are stored")


def _build_options(parser) -> None:
    parser.add_argument("--stored", action="store_true",
                        help="build from the results store only and compute nothing: figures draw what is stored "
                             "and mark the rest, claims whose tasks are missing read 'not computed'")
    parser.add_argument("--yes", action="store_true",
                        help=f"compute whatever is missing even when it costs more than "
                             f"{runner.COMPUTE_LIMIT_CPU_HOURS:g} CPU-hours by the cost models (without it such a "
                             "build stops first and says what it would cost)")


def _chapter_commands(sub) -> None:
    """The subcommands ``list``, ``run``, ``book``, ``plan`` and ``compute``: the chapters."""
    sub.add_parser("list", help="chapters with their parameters, defaults and per-profile values").set_defaults(
        func=_cmd_list
    )

    run = sub.add_parser("run", help="execute one chapter")
    run.add_argument("chapter", help="chapter stem, number or slug (see `pml list`)")
    run.add_argument("--profile", default=params.DEFAULT_PROFILE, help=f"one of {', '.join(params.PROFILES)}")
    run.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                     help="override a parameter (a Python literal: 3, 1e-3, [16,64,256], cos2x); the outputs go under "
                          "_build/*/<profile>+<overrides>/, never over the profile's")
    _cluster_options(run)
    _execution_options(run)
    _build_options(run)
    run.set_defaults(func=_cmd_run)

    bk = sub.add_parser("book", help="execute every chapter and render the HTML book")
    bk.add_argument("--profile", default=params.DEFAULT_PROFILE, help=f"one of {', '.join(params.PROFILES)}")
    _cluster_options(bk)
    _execution_options(bk)
    _build_options(bk)
    bk.set_defaults(func=_cmd_book)

    pl = sub.add_parser("plan", help="per chapter and step: tasks, how many are stored, estimated CPU-hours")
    pl.add_argument("chapter", nargs="*", help="chapters (default: every chapter)")
    pl.add_argument("--profile", default=params.DEFAULT_PROFILE, help=f"one of {', '.join(params.PROFILES)}")
    pl.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="override a parameter")
    pl.add_argument("--json", action="store_true",
                    help="a JSON list of {chapter, step, tasks, cached, cpu_hours, gpu_hours, remaining_cpu_hours}")
    pl.set_defaults(func=_cmd_plan)

    co = sub.add_parser("compute", help="compute a chapter's tasks (or some steps) into the results store",
                        description="Compute the tasks of a chapter's steps into the results store without "
                                    "executing its notebook; a later `pml run`/`pml book` only assembles and draws.")
    co.add_argument("chapter", help="chapter stem, number or slug")
    co.add_argument("--profile", default=params.DEFAULT_PROFILE, help=f"one of {', '.join(params.PROFILES)}")
    co.add_argument("--step", action="append", metavar="STEP", help="only this step (repeatable; see `pml plan`)")
    co.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="override a parameter")
    _cluster_options(co)
    _execution_options(co)
    co.set_defaults(func=_cmd_compute)


def _results_command(sub) -> None:
    """The subcommand ``results`` and its actions: pack, unpack, sign, verify, status."""
    rs = sub.add_parser("results", help="pack, unpack or verify a portable archive of task results")
    rsub = rs.add_subparsers(dest="action", required=True)
    pk = rsub.add_parser("pack", help="every stored task result of a profile's chapter steps into one file")
    pk.add_argument("--profile", default=params.DEFAULT_PROFILE, help=f"one of {', '.join(params.PROFILES)}")
    pk.add_argument("--out", required=True, metavar="FILE", help="the archive to write (.tar.gz)")
    pk.add_argument("chapter", nargs="*", help="only these chapters (default: every chapter)")
    pk.add_argument("--step", action="append", metavar="STEP", help="only this step (repeatable; see `pml plan`)")
    up = rsub.add_parser("unpack", help="check archives and add their results to the store")
    up.add_argument("file", nargs="*", help="archives (.tar.gz)")
    up.add_argument("--shipped", action="store_true", help="every archive of the repository's results/ folder")
    up.add_argument("--allowed-signers", metavar="FILE",
                    help="refuse an archive without a good signature (ARCHIVE.sig, `pml results sign`) by a key of "
                         "this ssh-keygen allowed-signers file; the signer is recorded as each entry's origin")
    sg = rsub.add_parser("sign", help="sign an archive with an SSH key (ssh-keygen -Y sign): writes ARCHIVE.sig")
    sg.add_argument("file")
    sg.add_argument("--key", required=True, metavar="FILE", help="the SSH private key")
    ve = rsub.add_parser("verify", help="recompute a random sample of an archive's tasks and compare")
    ve.add_argument("file", nargs="?", help="the archive (.tar.gz)")
    ve.add_argument("--shipped", action="store_true",
                    help="the archives of results/: one cheap task per step, steps in an order seeded by the commit")
    ve.add_argument("--sample", type=int, default=5, metavar="K", help="tasks to recompute (default 5)")
    ve.add_argument("--time-limit", type=_seconds, metavar="S",
                    help="seconds to spend at most (cheapest tasks first; positive and finite; --shipped: 300)")
    ve.add_argument("--seed", type=int, default=None,
                    help="seed of the random sample (default 0; --shipped: from the commit)")
    st = rsub.add_parser("status", help="the shipped archives (results/) against this checkout: per step, tasks "
                         "shipped, verified here and missing; stale entries")
    st.add_argument("--profile", default="paper", help=f"one of {', '.join(params.PROFILES)} (default paper)")
    st.add_argument("--markdown", action="store_true", help="print the table of the archives (results/README.md)")
    rs.set_defaults(func=_cmd_results)


def _check_commands(sub) -> None:
    """The subcommands ``claims``, ``bench`` and ``check-html``."""
    cl = sub.add_parser("claims", help="every claim with the paper's value, ours and the verdict")
    cl.add_argument("--profile", default=params.DEFAULT_PROFILE, help=f"one of {', '.join(params.PROFILES)}")
    cl.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                    help="the claims of a `pml run -p` with these overrides (default: the profile's own runs)")
    cl.add_argument("--json", action="store_true", help="print a JSON list")
    cl.set_defaults(func=_cmd_claims)

    be = sub.add_parser("bench", help="run a benchmark and print its figures")
    be.add_argument("name", choices=sorted(BENCHMARKS))
    be.add_argument("--json", action="store_true")
    be.add_argument("--time-limit", type=_seconds, metavar="SECONDS",
                    help="pml's budget per fit, for benchmarks that take one (fit: default 600)")
    be.add_argument("--quick", action="store_true", help="fewer cases, smaller sizes (precision, step)")
    be.set_defaults(func=_cmd_bench)

    ch = sub.add_parser("check-html", help="open the built book in headless Chromium (Playwright) and check it")
    ch.add_argument("--screenshots", action="store_true", help="save a full-page PNG of each page in _build/screenshots")
    ch.add_argument("--chromium", default=None, help="Chromium executable (default: chromium found on PATH)")
    ch.set_defaults(func=_cmd_check_html)


def _fit_commands(sub) -> None:
    """The subcommands ``fit``, ``predict`` and ``guide``: your own data (paper Section 5)."""
    from pml.fitting import METHODS  # cheap: heavy dependencies load only when a method runs

    methods = ["auto", *METHODS]
    ft = sub.add_parser("fit", help="fit a column of a CSV/.npz to the others and print the precision report",
                        description="Fit TARGET = f(inputs) to high precision (method 'auto': the User's Guide rules, "
                                    "see `pml guide`), print the precision report and save the model.")
    ft.add_argument("data", help="CSV with a header row, or .npz with one 1-D array per column")
    ft.add_argument("--target", required=True, help="the column to predict")
    ft.add_argument("--inputs", help="comma-separated input columns (default: every other column)")
    ft.add_argument("--method", default="auto", choices=methods, help="default: auto")
    ft.add_argument("--out", required=True, metavar="MODEL", help="where to save the model (.npz)")
    ft.add_argument("--validation", type=float, default=0.2, help="fraction of rows held out (default 0.2)")
    ft.add_argument("--seed", type=int, default=0, help="seed of the validation split and the methods (default 0)")
    ft.add_argument("--refit", action="store_true", help="refit on all rows after validation")
    ft.add_argument("--not-smooth", action="store_true", help="the target has kinks or steps (changes auto's choice)")
    ft.add_argument("--quiet", action="store_true", help="no progress bars")
    ft.add_argument("--json", action="store_true", help="print the report as JSON")
    ft.add_argument("--time-limit", type=_seconds, metavar="SECONDS",
                    help="wall-time limit of the fit: pml fit returns within SECONDS + 10%% plus the time to read "
                         "the data, with the best model found (candidates compared on subsamples of the rows, each "
                         "stopped in time, the winner refitted on as many rows as time allows; the report says what "
                         "was subsampled). Default: 600 for auto with d >= 3, none otherwise. Methods that can "
                         "stop in time: auto, poly, readout, kernel, deep-lm, lm-multistage (--not-smooth fits "
                         "cannot)")
    ft.add_argument("--transform", metavar="'G ~ H'",
                    help="fit a transformed target against transformed inputs: 'y ~ x', 'log y ~ log x', "
                         "'y ~ log x', 'log y ~ x', 'y^2 ~ x', 'y^2 ~ log x' (default: auto tries each for d >= 3; "
                         "a named method fits 'y ~ x')")
    ft.set_defaults(func=_cmd_fit)

    pr = sub.add_parser("predict", help="predict with a saved model; writes the input columns plus the prediction",
                        description="Write DATA's columns plus a column named after the model's target (CSV to "
                                    "standard output unless --out is given; --out X.npz writes .npz).")
    pr.add_argument("model", help="a model saved by `pml fit`")
    pr.add_argument("data", help="CSV with a header row, or .npz; must hold the model's input columns")
    pr.add_argument("--out", help="output file (.csv or .npz; default: CSV on standard output)")
    pr.set_defaults(func=_cmd_predict)

    gd = sub.add_parser("guide", help="the User's Guide rules (paper Fig. 10), or the choice for --d and --rows")
    gd.add_argument("--d", type=int, help="number of inputs")
    gd.add_argument("--rows", type=int, help="number of data rows")
    gd.add_argument("--not-smooth", action="store_true", help="the target has kinks or steps")
    gd.set_defaults(func=_cmd_guide)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _chapter_commands(sub)
    _results_command(sub)
    _check_commands(sub)
    _fit_commands(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "profile", None) is not None:
        try:
            params.check_profile(args.profile)
        except params.BookError as exc:
            print(f"pml: error: {exc}", file=sys.stderr)
            return 2
    from pml.engine import TaskFailures

    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside these handlers, not at the interpreter's exit
        return code
    except BrokenPipeError as exc:
        if _stdout_closed():
            return _end_quietly()
        print(f"pml: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except params.BookError as exc:
        print(f"pml: error: {exc}", file=sys.stderr)
        return 2
    except TaskFailures as exc:
        print(f"pml: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pml: interrupted; the interrupted chapter's last good outputs are unchanged, finished chapters and "
              "tasks are kept under _build/ (a rerun computes only what is missing)", file=sys.stderr)
        return 130
    except OSError as exc:  # a read-only checkout, a full disk, a folder where a file should be
        print(f"pml: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        from pml.engine.archive import ArchiveError
        from pml.engine.cluster import ClusterError
        from pml.engine.provenance import SignatureError

        if isinstance(exc, (ArchiveError, SignatureError)):  # bad input: an archive that cannot be used
            print(f"pml: error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, ClusterError):
            print(f"pml: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
