"""Render a results JSON as the README's markdown table and as a PNG plot (time and peak RSS vs frames)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from benchmarks.cases import CASES, E2E, QUALITY_CURVE
from benchmarks.machine import summary


def load(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _ratio(r: dict[str, Any]) -> str | None:
    """The ratio as the tables print it: with its rounds' span where it is a median of paired rounds."""
    if r.get("ratio") is None:
        return None
    text = f"{r['ratio']:.2f}×"
    if r.get("ratio_range") and r["case"] != r.get("ratio_to"):
        low, high = r["ratio_range"]
        text += f", {low:.2f}–{high:.2f} in {r['runs']} rounds"
    return text + (" vs dump_raw" if r.get("ratio_to") == "dump_raw" else "")


def _memory(r: dict[str, Any]) -> str:
    """Peak RSS of the process tree, and its PSS where measured (a page shared by the tree's processes once)."""
    if r.get("peak_rss_mb") is None:
        return "–"
    pss = r.get("peak_pss_mb")
    return f"{r['peak_rss_mb']:,.0f}" + ("" if pss is None else f" (PSS {pss:,.0f})")


def _row(r: dict[str, Any]) -> str:
    q = r.get("quality") or {}
    ok = r.get("status") == "ok"
    status = "ok" if ok else f"**{r.get('status')}**"
    if not ok and r.get("frames_grabbed"):
        status += f" after {r['frames_grabbed']} frames"
    if not ok and r.get("error"):
        status += ": " + " ".join(str(r["error"]).split())[:90].replace("|", "/")
    wall = _num(r.get("wall_s"), ".1f") + ("" if ok or r.get("wall_s") is None else " (until failure)")
    ratio = _ratio(r) or "–"
    size = r.get("output_bytes")
    psnr = "–" if q.get("psnr_mean") is None else f"{q['psnr_mean']:.1f} / {q['psnr_min']:.1f}"
    if q.get("stride", 1) > 1:
        psnr += f" (every {q['stride']}th)"
    play = "–" if not q else f"{q['play_s']:.2f} / {q['expected_play_s']:.2f}"
    flicker = "–" if q.get("static_changed") is None else f"{q['static_changed']:,}"
    rss = _memory(r) if r.get("status") in ("ok", "failed") else "–"
    cpu = _num(r.get("cpu_s"), ".1f") if r.get("status") in ("ok", "failed") else "–"
    return (
        f"| `{r['case']}` | {r['label']} | {status} | {wall} | {ratio} | {cpu} | {rss} | "
        f"{'–' if not size or r['case'] in ('render_only', 'null_savefig') else f'{size / 1e6:.2f}'} | {psnr} | "
        f"{flicker} | {play} |"
    )


def run_name(doc: dict[str, Any]) -> str:
    """The name a run was given (--name; runs before it was recorded: read from their command), else its plan's
    ("full", "quick"): a run of chosen frames or cases is not called a full one."""
    if doc.get("name"):
        return str(doc["name"])
    for i, word in enumerate(words := str(doc.get("command", "")).split()):
        if word.startswith("--name="):
            return word.removeprefix("--name=")
        if word == "--name" and i + 1 < len(words):
            return words[i + 1]
    return str(doc.get("mode"))


def markdown(doc: dict[str, Any]) -> str:
    """The results as markdown: machine line, then one table per (workload, frames)."""
    lines = [
        f"Run `{run_name(doc)}` at {doc.get('started')} ({doc.get('duration_s', '?')} s in all), "
        f"commit {doc['machine'].get('git_commit') or '?'}.",
        f"Machine: {summary(doc['machine'])}. "
        f"Load average {doc['machine'].get('load_avg_at_start')} at start, "
        f"{doc['machine'].get('load_avg_at_end')} at end.",
        "",
    ]
    limits = {v: d.get("effective_limits", {}) for v, d in doc.get("imagemagick_variants", {}).items()}
    if limits:
        lines.append(
            "ImageMagick memory/map/disk limit as `identify -list resource` reports it: "
            + "; ".join(
                f"{v}: {lim.get('memory', '?')}/{lim.get('map', '?')}/{lim.get('disk', '?')}"
                for v, lim in limits.items()
            )
            + "."
        )
        lines.append("")
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in doc["results"]:
        groups.setdefault((r["workload"], r["frames"]), []).append(r)
    for (workload, frames), rows in groups.items():
        w = doc["workloads"].get(workload, {})
        size = "x".join(map(str, w.get("size", [])))
        lines += [
            f"**{workload}, {frames} frames** ({size}, {w.get('fps')} fps; {w.get('description', '')})",
            "",
            "| case | what | status | wall s | × floor (e2e) / × tuned convert (encode) | CPU s | peak RSS MiB (PSS) "
            "| GIF MB | PSNR mean / min dB | static pixels that change | play s / expected |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        order = {name: i for i, name in enumerate(CASES)}
        lines += [_row(r) for r in sorted(rows, key=lambda r: order.get(r["case"], 99))]
        lines.append("")
    lines.append(
        "Wall time excludes interpreter start-up; CPU s is user + system of the whole tree, start-up included; peak RSS is "
        "the whole process tree (python + encoder), sampled every 50 ms, and PSS the same with a page the tree's "
        "processes share counted once (split with the harness where it maps it too: compare PSS between cases), in MiB "
        "(2**20 bytes; GIF MB are 10**6 bytes). PSNR is against matplotlib's own "
        "RGBA frames composited on white. Static pixels that change: pixels equal in source frames k-1 and k whose "
        "decoded GIF pixel changes, summed over the frames (flicker)."
    )
    return "\n".join(lines) + "\n"


def _cell(r: dict[str, Any] | None) -> list[str]:
    """Time (ratio), peak RSS, GIF size and PSNR cells of one case at one size, for the compact table."""
    if r is None or r.get("status") in ("unavailable", "skipped"):
        return [f"{r['status']}" if r else "–", "–", "–", "–"]
    rss = _memory(r)
    if r.get("status") != "ok":
        where = f" after {r['frames_grabbed']} fr" if r.get("frames_grabbed") else ""
        return [f"**failed**{where} ({r['wall_s']:.0f} s)" if r.get("wall_s") else "**failed**", rss, "–", "–"]
    ratio = f" ({_ratio(r)})" if r.get("ratio") is not None else ""
    size = f"{r['output_bytes'] / 1e6:.1f}" if r.get("output_bytes") and r["case"] != "dump_raw" else "–"
    q = r.get("quality") or {}
    psnr = f"{q['psnr_mean']:.1f} / {q['psnr_min']:.1f}" if q.get("psnr_mean") is not None else "–"
    fast = q.get("play_s") and q.get("expected_play_s") and abs(q["play_s"] / q["expected_play_s"] - 1) > 0.02
    if fast:
        psnr += f"; plays {q['play_s']:.1f} of {q['expected_play_s']:.1f} s"
    return [f"{r['wall_s']:.1f}{ratio}", rss, size, psnr]


def _groups(doc: dict[str, Any]) -> list[tuple[str, int]]:
    """The run's (workload, frames) pairs, in the plan's workload order, then by frames."""
    return sorted(
        {(r["workload"], r["frames"]) for r in doc["results"]}, key=lambda g: (list(doc["workloads"]).index(g[0]), g[1])
    )


def _by_case(doc: dict[str, Any]) -> dict[tuple[str, int, str], dict[str, Any]]:
    """Each result under (workload, frames, case)."""
    return {(r["workload"], r["frames"], r["case"]): r for r in doc["results"]}


def compact(doc: dict[str, Any], kind: str = E2E) -> str:
    """One row per case of ``kind``, three columns (time, peak RSS, PSNR) per workload and size."""
    groups = _groups(doc)
    by = _by_case(doc)
    names = [n for n, c in CASES.items() if c.kind == kind and any(r["case"] == n for r in doc["results"])]
    ref = "× floor" if kind == E2E else "× tuned convert"
    head = ["case"]
    for workload, frames in groups:
        head += [f"{workload} {frames}: s ({ref})", "peak MiB", "GIF MB", "PSNR mean / min dB"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for name in names:
        cells = [f"`{name}`"]
        for workload, frames in groups:
            cells += _cell(by.get((workload, frames, name)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: The fidelity table's columns: magicktune's default, then each anchor, then magicktune's other settings.
FIDELITY_CASES = {
    "mt_encode": "magicktune (default)",
    "pngquant_encode": "pngquant + gifsicle -O3",
    "pillow_encode": "Pillow",
    "ffmpeg_encode": "ffmpeg",
    "convert_policy": "convert",
    "mt_encode_octree": "magicktune, octree (before)",
    **{f"mt_encode_q{q}": f"quality {q}" for q in QUALITY_CURVE},
}


def fidelity(doc: dict[str, Any]) -> str:
    """Encode-only fidelity: one row per workload and size, one cell per case: GIF MB, PSNR mean / min dB and,
    in brackets, static pixels that change (flicker)."""
    by = _by_case(doc)
    groups = _groups(doc)
    names = [n for n in FIDELITY_CASES if any(r["case"] == n for r in doc["results"])]
    lines = [
        "| workload | " + " | ".join(FIDELITY_CASES[n] for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for workload, frames in groups:
        cells = []
        for name in names:
            r = by.get((workload, frames, name))
            q = (r or {}).get("quality") or {}
            if r is None or r.get("status") != "ok" or q.get("psnr_mean") is None:
                cells.append("–" if r is None else str(r.get("status")))
                continue
            flicker = "" if q.get("static_changed") is None else f" ({q['static_changed']:,})"
            cells.append(f"{r['output_bytes'] / 1e6:.2f}, {q['psnr_mean']:.1f} / {q['psnr_min']:.1f}{flicker}")
        lines.append(f"| {workload} {frames} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary_md(doc: dict[str, Any]) -> str:
    """The README block: machine, then compact end-to-end and encode-only tables, each where the run has its cases."""
    kinds = {r["kind"] for r in doc["results"] if r["case"] != "dump_raw"}
    blocks = [
        f"Machine: {summary(doc['machine'])}; load average {doc['machine'].get('load_avg_at_start')} "
        f"at start (run `{run_name(doc)}`, {doc.get('started')}, commit {doc['machine'].get('git_commit')}).\n"
    ]
    if E2E in kinds:
        blocks.append(
            f"End-to-end (render + save; ratio to the floor, `render_only`: update + one draw a frame):\n\n"
            f"{compact(doc, E2E)}"
        )
    if "encode" in kinds:
        blocks.append(
            f"Encode-only (the raw RGBA stream matplotlib would pipe; ratio to `convert` with limits raised "
            f"in policy.xml):\n\n{compact(doc, 'encode')}"
        )
        blocks.append(
            f"Fidelity, encode-only (GIF MB, PSNR mean / min dB, static pixels that change in brackets):\n\n"
            f"{fidelity(doc)}"
        )
    return "\n".join(blocks)


# One colour per case, alike within a family: greys for the floor, oranges for ImageMagick as matplotlib runs
# it, greens for Pillow, reds for ffmpeg, blues/purples for magicktune.
COLORS = {
    "render_only": "black",
    "null_savefig": "darkgray",
    "dump_raw": "dimgray",
    "mpl_imagemagick": "#e6550d",
    "mpl_imagemagick_env": "#fd8d3c",
    "mpl_imagemagick_policy": "#a63603",
    "convert_stock": "#e6550d",
    "convert_env": "#fd8d3c",
    "convert_policy": "#a63603",
    "mpl_pillow": "#31a354",
    "pillow_encode": "#31a354",
    "mpl_ffmpeg": "#de2d26",
    "ffmpeg_encode": "#de2d26",
    "mt_imagemagick_tuned": "#756bb1",
    "mt_magicktune": "#3182bd",
    "mt_magicktune_threads": "#08519c",
    "mt_magicktune_blit": "#6baed6",
    "mt_encode": "#3182bd",
    "mt_encode_stream": "#08519c",
    "mt_encode_octree": "#9ecae1",
    "pngquant_encode": "#e6550d",
}


def plot(doc: dict[str, Any], path: Path) -> Path:
    """Time and peak RSS against frame count, one line per case, one column per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(doc["workloads"])
    fig, axes = plt.subplots(
        2, len(workloads), figsize=(6.5 * len(workloads), 8.5), squeeze=False, constrained_layout=True
    )
    from matplotlib.ticker import LogLocator, NullFormatter, NullLocator, ScalarFormatter

    names = [n for n in CASES if any(r["case"] == n for r in doc["results"])]
    handles: dict[str, Any] = {}
    for col, workload in enumerate(workloads):
        for name in names:
            rows = sorted(
                (
                    r
                    for r in doc["results"]
                    if r["workload"] == workload
                    and r["case"] == name
                    and r.get("status") in ("ok", "failed")
                    and r.get("wall_s") is not None
                ),
                key=lambda r: r["frames"],
            )
            if not rows:
                continue
            style: dict[str, Any] = dict(
                color=COLORS.get(name, "tab:gray"), linestyle="-" if CASES[name].kind == E2E else "--"
            )
            if name in ("render_only", "null_savefig", "dump_raw"):
                style.update(
                    linewidth=2.5 if name == "render_only" else 1.5, linestyle="-" if name == "render_only" else ":"
                )
            elif name.startswith("mt_"):
                style.update(linewidth=2.5)
            for row_ax, key in ((0, "wall_s"), (1, "peak_rss_mb")):
                ax = axes[row_ax][col]
                good = [r for r in rows if r["status"] == "ok"]
                bad = [r for r in rows if r["status"] != "ok"]
                if good:
                    handles.setdefault(
                        name, ax.plot([r["frames"] for r in good], [r[key] for r in good], marker="o", **style)[0]
                    )
                if bad:
                    line = ax.plot(
                        [r["frames"] for r in bad],
                        [r[key] for r in bad],
                        marker="x",
                        markersize=11,
                        markeredgewidth=2,
                        linestyle="none",
                        color=style["color"],
                    )[0]
                    handles.setdefault(f"{name} (failed)", line)
        for row_ax, ylabel in ((0, "wall time, s"), (1, "peak RSS of process tree, MiB")):
            ax = axes[row_ax][col]
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("frames")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            size = "x".join(map(str, doc["workloads"][workload]["size"]))
            ax.set_title(f"{workload} ({size}): {'time' if row_ax == 0 else 'peak memory'}")
            frames = sorted({r["frames"] for r in doc["results"] if r["workload"] == workload})
            ax.set_xticks(frames, [str(f) for f in frames])
            ax.xaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
    order = {name: i for i, name in enumerate(CASES)}
    labels = sorted(handles, key=lambda label: (order.get(label.split(" ")[0], 99), label))
    axes[0][-1].legend(
        [handles[label] for label in labels],
        labels,
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        title="solid: end-to-end\ndashed: encode-only\nx: failed",
        title_fontsize=7,
    )
    title = f"magicktune benchmarks (run {run_name(doc)}): {summary(doc['machine'])}"
    fig.suptitle(textwrap.fill(title, width=int(110 * len(workloads))), fontsize=8)  # fits the figure's width
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: magicktune's quality curve, best first: mt_encode is quality 100.
CURVE = ("mt_encode", *(f"mt_encode_q{q}" for q in QUALITY_CURVE))


def fidelity_plot(doc: dict[str, Any], path: Path) -> Path | None:
    """GIF size against mean PSNR, one panel per workload at its largest frame count: each anchor a point,
    magicktune's quality settings a curve. None when no case made a GIF with a PSNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def measured(r: dict[str, Any]) -> bool:
        return r.get("status") == "ok" and bool(r.get("output_bytes")) and (r.get("quality") or {}).get("psnr_mean")

    panels = []
    for workload in doc["workloads"]:
        rows = [r for r in doc["results"] if r["workload"] == workload and measured(r)]
        if rows:
            frames = max(r["frames"] for r in rows)
            panels.append((workload, frames, [r for r in rows if r["frames"] == frames]))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False, constrained_layout=True)
    for ax, (workload, frames, rows) in zip(axes[0], panels):
        by = {r["case"]: r for r in rows}
        curve = [by[name] for name in CURVE if name in by]
        settings = ["100" if r["case"] == "mt_encode" else r["case"].removeprefix("mt_encode_q") for r in curve]
        if curve:
            ax.plot(
                [r["output_bytes"] / 1e6 for r in curve],
                [r["quality"]["psnr_mean"] for r in curve],
                "o-",
                color=COLORS["mt_encode"],
                linewidth=2,
                label="magicktune, quality " + ", ".join(settings),
            )
            for r, q in zip(curve, settings):
                ax.annotate(
                    q,
                    (r["output_bytes"] / 1e6, r["quality"]["psnr_mean"]),
                    fontsize=7,
                    xytext=(4, 4),
                    textcoords="offset points",
                )
        for name, r in by.items():
            if name in CURVE or name == "mt_encode_stream":
                continue
            ax.plot(
                r["output_bytes"] / 1e6,
                r["quality"]["psnr_mean"],
                "s" if name.startswith("mt_") else "D",
                color=COLORS.get(name, "tab:gray"),
                linestyle="none",
                label=name,
            )
        ax.set_xlabel("GIF MB")
        ax.set_ylabel("PSNR mean, dB")
        ax.set_title(f"{workload}, {frames} frames")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("size against fidelity: anchors as points, magicktune's quality settings as a curve", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_results_md(results_dir: Path) -> Path:
    """Regenerate RESULTS.md beside ``results_dir`` from every results JSON in it: the full run, named runs, quick."""
    md = results_dir.parent / "RESULTS.md"
    parts = [
        "# magicktune benchmark results",
        "",
        "Generated by `python -m benchmarks` from the JSON in `results/`; do not edit by hand.",
        "Regenerate a table alone with `python -m benchmarks --table benchmarks/results/full.json`.",
        "",
        "Before commit 7285b0c, `--quality` was a colour tolerance (what `--tolerance` is now), not a table size: the",
        "quality columns of the full run (`full`, commit be392fc) measured that knob. From 7285b0c until the commit",
        "after 6218d4f it was the share of the 256 entries each frame's table could use (`s22-issue-sizes`,",
        "`s22-issue-sizes-more`); since, the error a frame may add (`quantizer.error_at`).",
        "",
    ]
    order = {"full": 0, "quick": 2}
    for path in sorted(results_dir.glob("*.json"), key=lambda p: (order.get(p.stem, 1), p.stem)):
        doc = load(path)
        title = {"full": "Full run", "quick": "Quick run"}.get(path.stem, f"Run `{path.stem}`")
        pictures = [
            f"![{alt}]({png.relative_to(md.parent).as_posix()})\n"
            for png, alt in (
                (path.with_suffix(".png"), "time and peak memory against frames"),
                (path.with_name(f"{path.stem}-fidelity.png"), "size against PSNR"),
            )
            if png.exists()
        ]
        parts += [
            f"## {title}",
            "",
            f"Command: `{doc['command']}`",
            "",
            *pictures,
            summary_md(doc),
            "",
            "### Every figure",
            "",
            markdown(doc),
            "",
        ]
    md.write_text("\n".join(parts))
    return md
