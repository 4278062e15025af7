"""Run a plan of cases over workloads and frame counts, measure each, and write the JSON results.

Per (workload, frames): dump the raw RGBA stream first (it is the PSNR reference and the encode-only
input), then run every case in its own process, evaluate its GIF, and delete scratch output. With
``--repeat N`` the cases run in N rounds, each case once a round, so a machine whose speed drifts over
minutes slows a case and its floor alike, and each round's ratio is to the floor of the same round. The
JSON is rewritten after every case so an interrupted run still leaves its figures.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import imagemagick, machine
from benchmarks.cases import CASES, E2E, ENCODE_BASELINE, FLOOR, Case, encode_command, missing_needs
from benchmarks.measure import run_measured
from benchmarks.quality import evaluate
from benchmarks.workloads import WORKLOADS

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
OUT_DIR = REPO / "benchmarks" / "out"
NO_GIF = ("render_only", "null_savefig", "dump_raw")  # the references: they draw, and save nothing or raw


@dataclass
class Plan:
    """What to run: frame counts per workload, which cases, and the per-case time limit."""

    mode: str
    sizes: dict[str, list[int]]
    cases: list[str] = field(default_factory=lambda: list(CASES))
    timeout_s: float = 1200.0
    cap_slow: bool = True  # honour Case.max_frames
    keep: bool = False  # keep GIFs and raw streams in the out dir
    repeat: int = 1  # rounds of every case; each case's fastest successful run is reported (noisy machines)
    # Frame caps overriding Case.max_frames, keyed "case" or "workload/case" (more specific wins);
    # None lifts a cap, 0 skips the case.
    caps: dict[str, int | None] = field(default_factory=dict)

    def cap(self, case: Case, workload: str) -> int | None:
        """Largest frame count ``case`` runs at for ``workload`` in this plan (None: no cap)."""
        if not self.cap_slow:
            return None
        for key in (f"{workload}/{case.name}", case.name):
            if key in self.caps:
                return self.caps[key]
        return case.max_frames


QUICK = Plan("quick", {"seed": [30, 90], "field": [30], "lines": [30], "photo": [30]}, timeout_s=300.0, cap_slow=False)
# The full run (96 minutes on a 2-core machine with the caps the README names, most of it rendering). On `field`, `lines` and `photo` the ImageMagick
# variants that only differ from stock when memory runs out (they do not at 300 frames) are left out.
_SMALL_ONLY: dict[str, int | None] = {
    f"{workload}/{case}": 0
    for workload in ("field", "lines", "photo")
    for case in ("mpl_imagemagick_env", "mpl_imagemagick_policy", "convert_stock", "convert_env")
}
FULL = Plan(
    "full", {"seed": [300, 3000], "field": [300], "lines": [300], "photo": [300]}, timeout_s=1800.0, caps=_SMALL_ONLY
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _child_env(base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    return env


def run_case(case: Case, workload: str, frames: int, workdir: Path, raw: Path, plan: Plan) -> dict[str, Any]:
    """Measure one case once; returns its result record (quality included when it made a GIF)."""
    spec = WORKLOADS[workload]
    record: dict[str, Any] = {
        "workload": workload,
        "frames": frames,
        "case": case.name,
        "kind": case.kind,
        "label": case.label,
        "variant": case.variant,
    }
    missing = missing_needs(case)
    if missing:
        return {**record, "status": "unavailable", "error": f"missing: {', '.join(missing)}"}
    cap = plan.cap(case, workload)
    if cap is not None and frames > cap:
        why = "not run for this workload" if cap == 0 else f"capped at {cap} frames"
        return {**record, "status": "skipped", "error": f"{why} to bound run time"}
    if case.kind != E2E and not raw.exists():
        return {**record, "status": "skipped", "error": "no raw stream (dump_raw failed)"}

    out = raw if case.name == "dump_raw" else workdir / f"{case.name}.gif"
    out.unlink(missing_ok=True)
    env = _child_env(imagemagick.variant_env(case.variant, workdir))
    log = workdir / f"{case.name}.log"
    if case.kind == E2E:
        result_file = workdir / f"{case.name}.result.json"
        result_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "benchmarks.child", case.name, workload, str(frames), str(out), str(result_file)]
        m = run_measured(argv, env=env, log=log, timeout=plan.timeout_s, cwd=REPO)
        child = json.loads(result_file.read_text()) if result_file.exists() else {}
        status = child.get("status", "failed")
        wall = child.get("wall_s")
        record["frames_grabbed"] = child.get("frames_grabbed")
        error = child.get("error") or (None if m.returncode == 0 else m.stderr_tail[-1500:])
    else:
        argv, via_stdin = encode_command(case, raw, spec.size, spec.fps, out)
        record["command"] = " ".join(argv) + (f" < {raw.name}" if via_stdin else "")
        m = run_measured(argv, env=env, stdin=raw if via_stdin else None, log=log, timeout=plan.timeout_s, cwd=REPO)
        ok = m.returncode == 0 and out.exists() and out.stat().st_size > 0
        status, wall = ("ok" if ok else "failed"), m.process_s
        error = None if ok else _last_line(m.stderr_tail) or f"exit status {m.returncode}"
        if not ok:
            record["log_tail"] = m.stderr_tail[-1500:]
    if m.timed_out:
        status, error = "failed", f"timed out after {plan.timeout_s:.0f} s (killed)"
    makes_gif = case.name not in NO_GIF
    makes_file = CASES.keys() - {"render_only", "null_savefig"}
    if status == "ok" and makes_gif and not (out.exists() and out.stat().st_size):
        status, error = "failed", "no output written"
    record.update(
        {
            "status": status,
            "error": error,
            "wall_s": wall,
            "process_s": m.process_s,
            "cpu_s": m.cpu_s,
            "peak_rss_mb": m.peak_rss_mb,
            "peak_pss_mb": m.peak_pss_mb,
            "rss_samples": m.samples,
            "returncode": m.returncode,
            "output_bytes": out.stat().st_size if case.name in makes_file and out.exists() else None,
        }
    )
    if status == "ok" and makes_gif and raw.exists():
        try:
            record["quality"] = evaluate(out, raw, spec.size, spec.fps).as_dict()
        except Exception as exc:  # an undecodable GIF is a finding, not a crash
            record["quality_error"] = f"{type(exc).__name__}: {exc}"
    if makes_gif and not plan.keep:
        out.unlink(missing_ok=True)
    return record


def merge_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One record for a case's runs in round order: best wall time, worst peak memory, every wall time. A failure
    ends a case's runs, so only the last can have failed: then the record is that failure, naming its round."""
    if len(runs) == 1:
        return runs[0]
    walls = {"runs": len(runs), "wall_s_all": [round(r["wall_s"], 3) for r in runs if r.get("status") == "ok"]}
    if runs[-1].get("status") != "ok":
        return {**runs[-1], **walls, "failed_round": len(runs)}
    return {
        **min(runs, key=lambda r: r["wall_s"]),
        **walls,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "peak_pss_mb": max(r["peak_pss_mb"] for r in runs),
    }


def add_ratios(results: list[dict[str, Any]]) -> None:
    """Ratio of wall time to the render-only floor (end-to-end) or to tuned convert (encode-only).

    Where render_only was capped away, the floor is dump_raw (render + write the raw stream: a floor a
    little higher than rendering alone); ``ratio_to`` says which. Where a case and its reference ran in the
    same rounds (``--repeat``), the ratio is the median of the ratios of the rounds both ran, each to the
    reference's run in that round, and ``ratio_range`` is their span; otherwise it is best wall time to best
    wall time (dump_raw, the reference where the floor is capped away, runs once).
    """
    base: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in results:
        if r["case"] in (FLOOR, "dump_raw", ENCODE_BASELINE) and r.get("status") == "ok" and r.get("wall_s"):
            base[(r["workload"], r["frames"], r["case"])] = r
    for r in results:
        ref = FLOOR if r["kind"] == E2E else ENCODE_BASELINE
        if ref == FLOOR and (r["workload"], r["frames"], FLOOR) not in base:
            ref = "dump_raw"
        b = base.get((r["workload"], r["frames"], ref))
        r["ratio_to"] = ref
        r.pop("ratio_range", None)
        if not (b and r.get("wall_s") and r.get("status") == "ok"):
            r["ratio"] = None
            continue
        # the rounds both ran: a run still going (the JSON is rewritten after every case) has fewer than its floor
        rounds = [mine / theirs for mine, theirs in zip(r.get("wall_s_all", []), b.get("wall_s_all", []))]
        if len(rounds) > 1:
            r["ratio"] = round(statistics.median(rounds), 3)
            r["ratio_range"] = [round(min(rounds), 3), round(max(rounds), 3)]
        else:
            r["ratio"] = round(r["wall_s"] / b["wall_s"], 3)


def run_plan(
    plan: Plan,
    *,
    out_dir: Path = OUT_DIR,
    results_path: Path,
    log: Callable[[str], None] = print,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """Run ``plan`` and write ``results_path`` (JSON) after every case; returns the document. ``argv``: the arguments
    the run was given, for its record (this process's own by default)."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "schema": 1,
        "mode": plan.mode,
        "name": results_path.stem,
        "started": _now(),
        "finished": None,
        "command": " ".join(["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)]),
        "plan": {
            "sizes": plan.sizes,
            "cases": plan.cases,
            "caps": plan.caps if plan.cap_slow else {},
            "case_caps": {c: CASES[c].max_frames for c in plan.cases if CASES[c].max_frames and plan.cap_slow},
            "repeat": plan.repeat,
            "timeout_s": plan.timeout_s,
        },
        "machine": machine.describe(REPO),
        "imagemagick_variants": imagemagick.describe_variants(out_dir),
        "workloads": {
            name: {
                "size": list(WORKLOADS[name].size),
                "fps": WORKLOADS[name].fps,
                "description": WORKLOADS[name].description,
                "frames": sizes,
            }
            for name, sizes in plan.sizes.items()
        },
        "notes": {
            "wall_s": "end-to-end: figure build + ani.save() inside a fresh interpreter, imports excluded; "
            "encode-only: the command's wall time",
            "peak_rss_mb": "max of 50 ms samples of summed RSS over the process tree (python + encoder)",
            "peak_pss_mb": "max of 1 s samples of summed PSS: a page shared by processes of the tree counted once "
            "(and split with any process outside it that maps it too, such as the harness)",
            "cpu_s": "user + system CPU of the process and its reaped children",
            "psnr": "decoded GIF (Pillow, disposal honoured) vs source RGBA frames composited on white; "
            "every k-th frame when stride > 1; 100 dB means identical",
            "play_s": "sum of decoded GIF frame delays; expected_play_s = frames / fps",
            "ratio": f"end-to-end: wall / {FLOOR}; encode-only: wall / {ENCODE_BASELINE}; with repeat > 1, the "
            "median of each round's ratio to the reference's run in that round, ratio_range their span",
        },
        "results": [],
    }
    try:
        for workload, sizes in plan.sizes.items():
            for frames in sizes:
                workdir = out_dir / f"{workload}-{frames}"
                workdir.mkdir(parents=True, exist_ok=True)
                raw = workdir / "source.rgba"
                raw.unlink(missing_ok=True)
                order = ["dump_raw", *[c for c in plan.cases if c != "dump_raw"]]
                runs: dict[str, list[dict[str, Any]]] = {}
                place: dict[str, int] = {}
                for round_ in range(plan.repeat):
                    for name in order:
                        earlier = runs.setdefault(name, [])
                        if earlier and (earlier[-1].get("status") != "ok" or name == "dump_raw"):
                            continue  # a failed case is not run again; the reference stream is dumped once
                        earlier.append(run_case(CASES[name], workload, frames, workdir, raw, plan))
                        record = merge_runs(earlier)
                        if name == "dump_raw" and "dump_raw" not in plan.cases:
                            record["not_requested"] = True  # needed as reference, reported anyway
                        if name in place:
                            doc["results"][place[name]] = record
                        else:
                            place[name] = len(doc["results"])
                            doc["results"].append(record)
                        add_ratios(doc["results"])
                        _write(doc, results_path)
                        log(_progress(earlier[-1]) + (f"  (round {round_ + 1})" if plan.repeat > 1 else ""))
                if not plan.keep:
                    shutil.rmtree(workdir, ignore_errors=True)
    finally:
        doc["finished"] = _now()
        doc["duration_s"] = round(time.perf_counter() - started, 1)
        doc["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        _write(doc, results_path)
        if not plan.keep:
            shutil.rmtree(out_dir / "policy-raised", ignore_errors=True)
            try:
                out_dir.rmdir()
            except OSError:
                pass
    return doc


def _last_line(text: str) -> str:
    """The last non-empty line of a log: convert's one-line error, or a traceback's exception line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _write(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)


def _progress(r: dict[str, Any]) -> str:
    q = r.get("quality") or {}
    parts = [f"{r['workload']}-{r['frames']:<5} {r['case']:<24} {r['status']:<11}"]
    if r.get("wall_s") is not None:
        parts.append(f"{r['wall_s']:7.1f} s  {r.get('peak_rss_mb', 0):7.0f} MiB")
    if q.get("psnr_mean") is not None:
        parts.append(
            f"PSNR {q['psnr_mean']:.1f}/{q['psnr_min']:.1f} dB  play {q['play_s']:.1f}/{q['expected_play_s']:.1f} s"
        )
    if r.get("error") and r["status"] != "ok":
        parts.append("| " + " ".join(str(r["error"]).split())[:140])
    return "  ".join(parts)
