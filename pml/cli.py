"""The ``pml`` command: list, run and build chapters, check claims, run benchmarks and the browser check; fit your own
data (``pml fit``, ``pml predict``, ``pml guide``)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import io
import json
import sys
from pathlib import Path

from pml import paths
from pml.book import runner

BENCHMARKS = {
    "simplex": "pml.benchmarks.simplex",
    "batched": "pml.benchmarks.batched",
    "bfgs": "pml.benchmarks.bfgs",
    "precision": "pml.benchmarks.precision",
}


def _cmd_list(args) -> int:
    profiles = {p: runner.load_profile(p) for p in runner.PROFILES}
    for stem in runner.chapters():
        print(stem)
        for name, default in runner.chapter_parameters(stem).items():
            if name == "profile":
                continue
            per_profile = "  ".join(f"{p}={profiles[p].get(stem, {}).get(name, default)!r}" for p in runner.PROFILES)
            print(f"    {name:<22} default={default!r:<24} {per_profile}")
    return 0


def _overrides(pairs) -> dict:
    return dict(runner.parse_assignment(p) for p in pairs or [])


def _cmd_run(args) -> int:
    result = runner.run_chapter(args.chapter, args.profile, _overrides(args.param))
    print(f"chapter {result.chapter} ({result.profile}) executed in {result.seconds:.1f} s")
    print(f"  parameters: {result.parameters}")
    print(f"  executed notebook: {result.notebook}")
    print(f"  figures: {result.figures}")
    print(f"  results cache: {paths.results_dir()}")
    print(f"  claims: {result.claims or 'this chapter checks no claims'}")
    return 0


def _cmd_book(args) -> int:
    html = runner.build(args.profile)
    print(f"\nOpen the book: {html / 'index.html'}")
    table, ok = runner.summary(args.profile)
    counts = ", ".join(f"{n} {verdict}" for verdict, n in table.counts().items())
    print(f"Claims at profile {args.profile}: {counts or 'none'} (details: pml claims --profile {args.profile})")
    return 0


def _cmd_claims(args) -> int:
    table, ok = runner.summary(args.profile)
    if args.json:
        print(json.dumps([v.to_dict() for v in table.verdicts], indent=2))
    else:
        print(table)
        counts = ", ".join(f"{n} {verdict}" for verdict, n in table.counts().items())
        print(f"\n{len(table.verdicts)} claims at profile {args.profile}: {counts}")
    if not ok:
        print(
            "claims checkable at this profile are not reproduced (without a known deviation) or their chapter "
            "results are missing",
            file=sys.stderr,
        )
    return 0 if ok else 1


def _cmd_bench(args) -> int:
    module = importlib.import_module(BENCHMARKS[args.name])
    takes_progress = "progress" in inspect.signature(module.run).parameters
    result = module.run(progress=sys.stderr.isatty()) if takes_progress else module.run()
    print(json.dumps(result, indent=2, default=float) if args.json else module.format(result))
    return 0


def _cmd_check_html(args) -> int:
    from pml.book import htmlcheck

    argv = [str(paths.html_dir())]
    for stem in runner.chapters():
        n_figures = runner.source_path(stem).read_text().count("```{glue:figure}")
        if n_figures:  # every figure directive must show up as an image
            argv += ["--min-images", f"book/{stem}.html={n_figures}"]
    return htmlcheck.main(argv)


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
    import numpy as np

    from pml import fitting
    from pml.fitting import tables

    try:
        out = Path(args.out)
        if out.resolve() == Path(args.data).resolve():
            return _fail(f"--out {args.out} is the data file itself; choose another name")
        if not (out.parent if str(out.parent) else Path(".")).is_dir():
            return _fail(f"cannot write {out}: no such folder {out.parent}")
        table = tables.read_table(args.data)
        if args.target not in table.names:
            return _fail(f"{args.data}: no column {args.target!r} (--target); columns are: {', '.join(table.names)}")
        inputs = [c.strip() for c in args.inputs.split(",")] if args.inputs else \
            [c for c in table.names if c != args.target]
        unknown = [c for c in inputs if c not in table.names]
        if unknown:
            return _fail(f"{args.data}: no column(s) {', '.join(map(repr, unknown))} (--inputs); columns are: "
                         f"{', '.join(table.names)}")
        if args.target in inputs:
            return _fail(f"the target {args.target!r} cannot also be an input")
        if not inputs:
            return _fail(f"{args.data}: no input columns besides the target {args.target!r}")
        y = table.column(args.target)
        X = np.column_stack([table.column(c) for c in inputs])
        data_floor = None
        if table.is_csv:
            rounded = tables.decimal_floor(table.raw[args.target], y)
            if rounded is not None and rounded[0] > fitting.float64_floor(y):
                data_floor = rounded[0]
                print(f"pml: note: the target {args.target!r} is written with at most {rounded[1]} significant digits; "
                      f"no fit can be more precise than about {data_floor:.1e}", file=sys.stderr)
        model = fitting.fit(X, y, args.method, validation=args.validation, seed=args.seed,
                            progress=(not args.quiet) and sys.stderr.isatty(), smooth=not args.not_smooth,
                            refit=args.refit, input_names=inputs, target_name=args.target, data_floor=data_floor)
        model.save(out)
    except (tables.TableError, fitting.FitError, OSError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("pml: interrupted; no model was written", file=sys.stderr)
        return 130
    print(json.dumps(model.report.to_dict(), indent=2, default=float) if args.json else model.report)
    if not args.json:
        print(f"\nmodel written to {out}")
    return 0


def _cmd_predict(args) -> int:
    import numpy as np

    from pml import fitting
    from pml.fitting import tables

    try:
        try:
            model = fitting.load(args.model)
        except FileNotFoundError as exc:
            return _fail(str(exc))
        table = tables.read_table(args.data)
        missing = [c for c in model.input_names if c not in table.names]
        if missing:
            return _fail(f"{args.data} lacks the model's input column(s) {', '.join(map(repr, missing))}; the model "
                         f"takes {', '.join(model.input_names)}; the file has: {', '.join(table.names)}")
        X = np.column_stack([table.column(c) for c in model.input_names])
        y = model.predict(X)
        name = model.target_name
        if name in table.names:
            name = f"{name}_predicted"
            print(f"pml: note: {args.data} already has a column {model.target_name!r}; predictions go to {name!r}",
                  file=sys.stderr)
        columns = {c: table.text(c) for c in table.names}
        columns[name] = [repr(float(v)) for v in y]
        n_nan = int(np.sum(~np.isfinite(y)))
        if args.out and args.out.lower().endswith(".npz"):
            arrays = {c: table.column(c) if c in model.input_names else np.asarray(table.raw[c]) for c in table.names}
            arrays[name] = y
            with tables.atomic_write(args.out, "wb") as fh:
                np.savez(fh, **arrays)
        elif args.out:
            with tables.atomic_write(args.out) as fh:
                tables.write_table(columns, fh)
        else:
            buf = io.StringIO()
            tables.write_table(columns, buf)
            sys.stdout.write(buf.getvalue())
    except (tables.TableError, fitting.FitError, fitting.ModelFileError, OSError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("pml: interrupted; nothing was written", file=sys.stderr)
        return 130
    if n_nan:
        print(f"pml: note: {n_nan} of {y.size} rows got no prediction (nan): they lie outside the training data's "
              "convex hull", file=sys.stderr)
    if args.out:
        print(f"{y.size} predictions of {model.target_name!r} written to {args.out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="chapters with their parameters, defaults and per-profile values").set_defaults(
        func=_cmd_list
    )

    run = sub.add_parser("run", help="execute one chapter")
    run.add_argument("chapter", help="chapter stem, number or slug (see `pml list`)")
    run.add_argument("--profile", default=runner.DEFAULT_PROFILE, help=f"one of {', '.join(runner.PROFILES)}")
    run.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="override a parameter")
    run.set_defaults(func=_cmd_run)

    bk = sub.add_parser("book", help="execute every chapter and render the HTML book")
    bk.add_argument("--profile", default=runner.DEFAULT_PROFILE, help=f"one of {', '.join(runner.PROFILES)}")
    bk.set_defaults(func=_cmd_book)

    cl = sub.add_parser("claims", help="every claim with the paper's value, ours and the verdict")
    cl.add_argument("--profile", default=runner.DEFAULT_PROFILE, help=f"one of {', '.join(runner.PROFILES)}")
    cl.add_argument("--json", action="store_true", help="print a JSON list")
    cl.set_defaults(func=_cmd_claims)

    be = sub.add_parser("bench", help="run a benchmark and print its figures")
    be.add_argument("name", choices=sorted(BENCHMARKS))
    be.add_argument("--json", action="store_true")
    be.set_defaults(func=_cmd_bench)

    sub.add_parser("check-html", help="render the built book in headless Chromium and check it").set_defaults(
        func=_cmd_check_html
    )

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
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "profile", None) is not None:
        try:
            runner.check_profile(args.profile)
        except runner.BookError as exc:
            print(f"pml: error: {exc}", file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except runner.BookError as exc:
        print(f"pml: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pml: interrupted; finished chapters and cached results are kept under _build/", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
