"""The ``pml`` command: list, run and build chapters, check claims, run benchmarks and the browser check."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from pml import book, paths

BENCHMARKS = {
    "simplex": "pml.benchmarks.simplex",
    "batched": "pml.benchmarks.batched",
    "bfgs": "pml.benchmarks.bfgs",
    "precision": "pml.benchmarks.precision",
}


def _cmd_list(args) -> int:
    profiles = {p: book.load_profile(p) for p in book.PROFILES}
    for stem in book.chapters():
        print(stem)
        for name, default in book.chapter_parameters(stem).items():
            if name == "profile":
                continue
            per_profile = "  ".join(f"{p}={profiles[p].get(stem, {}).get(name, default)!r}" for p in book.PROFILES)
            print(f"    {name:<22} default={default!r:<24} {per_profile}")
    return 0


def _overrides(pairs) -> dict:
    return dict(book.parse_assignment(p) for p in pairs or [])


def _cmd_run(args) -> int:
    result = book.run_chapter(args.chapter, args.profile, _overrides(args.param))
    print(f"chapter {result.chapter} ({result.profile}) executed in {result.seconds:.1f} s")
    print(f"  parameters: {result.parameters}")
    print(f"  executed notebook: {result.notebook}")
    print(f"  figures: {result.figures}")
    print(f"  results cache: {paths.results_dir()}")
    print(f"  claims: {result.claims or 'this chapter checks no claims'}")
    return 0


def _cmd_book(args) -> int:
    html = book.build(args.profile)
    print(f"\nOpen the book: {html / 'index.html'}")
    table, ok = book.summary(args.profile)
    counts = ", ".join(f"{n} {verdict}" for verdict, n in table.counts().items())
    print(f"Claims at profile {args.profile}: {counts or 'none'} (details: pml claims --profile {args.profile})")
    return 0


def _cmd_claims(args) -> int:
    table, ok = book.summary(args.profile)
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
    result = module.run()
    print(json.dumps(result, indent=2, default=float) if args.json else module.format(result))
    return 0


def _cmd_check_html(args) -> int:
    from pml import htmlcheck

    argv = [str(paths.html_dir())]
    for stem in book.chapters():
        n_figures = book.source_path(stem).read_text().count("```{glue:figure}")
        if n_figures:  # every figure directive must show up as an image
            argv += ["--min-images", f"book/{stem}.html={n_figures}"]
    return htmlcheck.main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="chapters with their parameters, defaults and per-profile values").set_defaults(
        func=_cmd_list
    )

    run = sub.add_parser("run", help="execute one chapter")
    run.add_argument("chapter", help="chapter stem, number or slug (see `pml list`)")
    run.add_argument("--profile", default=book.DEFAULT_PROFILE, help=f"one of {', '.join(book.PROFILES)}")
    run.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="override a parameter")
    run.set_defaults(func=_cmd_run)

    bk = sub.add_parser("book", help="execute every chapter and render the HTML book")
    bk.add_argument("--profile", default=book.DEFAULT_PROFILE, help=f"one of {', '.join(book.PROFILES)}")
    bk.set_defaults(func=_cmd_book)

    cl = sub.add_parser("claims", help="every claim with the paper's value, ours and the verdict")
    cl.add_argument("--profile", default=book.DEFAULT_PROFILE, help=f"one of {', '.join(book.PROFILES)}")
    cl.add_argument("--json", action="store_true", help="print a JSON list")
    cl.set_defaults(func=_cmd_claims)

    be = sub.add_parser("bench", help="run a benchmark and print its figures")
    be.add_argument("name", choices=sorted(BENCHMARKS))
    be.add_argument("--json", action="store_true")
    be.set_defaults(func=_cmd_bench)

    sub.add_parser("check-html", help="render the built book in headless Chromium and check it").set_defaults(
        func=_cmd_check_html
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "profile", None) is not None:
        try:
            book.check_profile(args.profile)
        except book.BookError as exc:
            print(f"pml: error: {exc}", file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except book.BookError as exc:
        print(f"pml: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pml: interrupted; finished chapters and cached results are kept under _build/", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
