"""``python -m benchmarks``: run the benchmark (full by default, ``--quick`` for a few minutes), or render
the markdown table / plot from an existing results JSON.

Examples::

    python -m benchmarks --quick                       # results/quick.json, quick.png; RESULTS.md
    python -m benchmarks                               # the full run (~60 min): results/full.json ...
    python -m benchmarks --summary benchmarks/results/full.json   # print the compact README tables
    python -m benchmarks --table benchmarks/results/full.json     # print every figure, one table per size
    python -m benchmarks --render                      # redraw results/*.png and RESULTS.md from the JSON
    python -m benchmarks --quick --frames seed=4,6 --cases render_only,mpl_pillow   # a smoke run
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from benchmarks import report
from benchmarks.cases import CASES
from benchmarks.suite import FULL, OUT_DIR, QUICK, RESULTS_DIR, Plan, run_plan
from benchmarks.workloads import WORKLOADS


def _frames(values: list[str] | None, default: dict[str, list[int]]) -> dict[str, list[int]]:
    """Parse ``--frames seed=300,3000 --frames field=300``; naming any workload replaces the default set."""
    if not values:
        return default
    sizes: dict[str, list[int]] = {}
    for value in values:
        name, _, counts = value.partition("=")
        if name not in WORKLOADS or not counts:
            raise SystemExit(f"--frames wants WORKLOAD=N[,N...] with WORKLOAD in {sorted(WORKLOADS)}: {value!r}")
        sizes[name] = [int(c) for c in counts.split(",")]
    return sizes


def _caps(values: list[str] | None, base: dict[str, int | None]) -> dict[str, int | None]:
    """Parse ``--cap render_only=300 --cap field/convert_env=0 --cap mt_magicktune=none`` over the plan's caps."""
    caps = dict(base)
    for value in values or []:
        key, _, n = value.partition("=")
        name = key.rpartition("/")[2]
        if name not in CASES or not (n.isdigit() or n == "none"):
            raise SystemExit(f"--cap wants [WORKLOAD/]CASE=N|none with CASE from --list: {value!r}")
        caps[key] = None if n == "none" else int(n)
    return caps


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small frame counts: finishes in a few minutes")
    p.add_argument("--frames", action="append", metavar="WORKLOAD=N[,N]", help="frame counts (repeatable)")
    p.add_argument("--cases", help=f"comma-separated subset of: {', '.join(CASES)}")
    p.add_argument("--name", help="results file stem (default: quick or full)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--out-dir", type=Path, default=OUT_DIR, help="scratch for raw streams and GIFs (deleted)")
    p.add_argument("--timeout", type=float, help="per-case limit in seconds")
    p.add_argument("--no-cap", action="store_true", help="run slow anchors at every frame count")
    p.add_argument(
        "--cap",
        action="append",
        metavar="CASE=N",
        help="[WORKLOAD/]CASE=N: run CASE only up to N frames (0: never, none: no cap)",
    )
    p.add_argument("--keep", action="store_true", help="keep scratch GIFs and raw streams")
    p.add_argument(
        "--repeat",
        type=int,
        help="rounds of every case: best wall time, and the median of each round's ratio to its floor (default: 1)",
    )
    p.add_argument("--table", type=Path, metavar="JSON", help="print the markdown table for a results JSON")
    p.add_argument("--summary", type=Path, metavar="JSON", help="print the compact README tables for a results JSON")
    p.add_argument("--plot", type=Path, metavar="JSON", help="redraw the PNG plot for a results JSON")
    p.add_argument(
        "--render",
        action="store_true",
        help="redraw the PNG of every JSON in --results-dir and rewrite RESULTS.md, without running",
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for case in CASES.values():
            print(f"{case.name:<24} {case.kind:<7} {case.label}")
        return 0
    if args.table:
        print(report.markdown(report.load(args.table)), end="")
        return 0
    if args.render:
        for path in sorted(args.results_dir.glob("*.json")):
            doc = report.load(path)
            print(report.plot(doc, path.with_suffix(".png")))
            print(report.fidelity_plot(doc, path.with_name(f"{path.stem}-fidelity.png")))
        print(report.write_results_md(args.results_dir))
        return 0
    if args.summary:
        print(report.summary_md(report.load(args.summary)), end="")
        return 0
    if args.plot:
        doc = report.load(args.plot)
        print(report.plot(doc, args.plot.with_suffix(".png")))
        print(report.fidelity_plot(doc, args.plot.with_name(f"{args.plot.stem}-fidelity.png")))
        return 0

    base = QUICK if args.quick else FULL
    cases = args.cases.split(",") if args.cases else list(CASES)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; see --list")
    plan: Plan = replace(
        base,
        sizes=_frames(args.frames, base.sizes),
        cases=cases,
        timeout_s=args.timeout or base.timeout_s,
        cap_slow=base.cap_slow and not args.no_cap,
        keep=args.keep,
        repeat=args.repeat or base.repeat,
        caps=_caps(args.cap, base.caps),
    )
    stem = args.name or plan.mode
    results = args.results_dir / f"{stem}.json"
    print(f"benchmarks: run {stem}, {plan.sizes}, {len(plan.cases)} cases -> {results}", flush=True)
    doc = run_plan(
        plan,
        out_dir=args.out_dir,
        results_path=results,
        log=lambda line: print(line, flush=True),
        argv=sys.argv[1:] if argv is None else argv,
    )
    png = report.plot(doc, results.with_suffix(".png"))
    report.fidelity_plot(doc, results.with_name(f"{stem}-fidelity.png"))
    md = report.write_results_md(args.results_dir)
    print(f"wrote {results}, {png}, {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
