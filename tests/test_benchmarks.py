"""Smoke test of the benchmark harness: the quick mode's code path on a handful of frames.

No timing assertions: this checks that cases run in their own processes, that results, the markdown table
and the plot come out, and that quality figures are sane. Cases whose tools are missing (ffmpeg is only
installed by `make bench`; magicktune's writers may not exist yet) must be recorded, not crash.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import frame_times, report
from benchmarks.__main__ import main
from benchmarks.cases import CASES
from benchmarks.quality import evaluate
from magicktune import encoder

SMOKE_CASES = [
    "render_only",
    "null_savefig",
    "mpl_imagemagick",
    "mpl_pillow",
    "mt_magicktune",
    "mt_magicktune_threads",
    "mt_magicktune_blit",
    "convert_stock",
    "convert_policy",
    "mt_encode",
    "mt_encode_q50",
    "mt_encode_octree",
    "pngquant_encode",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("bench")
    results = root / "results"
    code = main(
        [
            "--quick",
            "--frames",
            "seed=3,5",
            "--cases",
            ",".join(SMOKE_CASES),
            "--name",
            "smoke",
            "--results-dir",
            str(results),
            "--out-dir",
            str(root / "out"),
            "--timeout",
            "240",
        ]
    )
    assert code == 0
    return json.loads((results / "smoke.json").read_text()), root


def test_every_requested_case_is_recorded(smoke: tuple[dict, Path]) -> None:
    doc, _ = smoke
    seen = {(r["frames"], r["case"]) for r in doc["results"]}
    for frames in (3, 5):
        for case in ["dump_raw", *SMOKE_CASES]:
            assert (frames, case) in seen
    for r in doc["results"]:
        assert r["status"] in {"ok", "failed", "unavailable", "skipped"}, r
        assert r["kind"] == CASES[r["case"]].kind


def test_measured_figures_are_sane(smoke: tuple[dict, Path]) -> None:
    doc, _ = smoke
    by = {(r["frames"], r["case"]): r for r in doc["results"]}
    floor = by[(5, "render_only")]
    assert floor["status"] == "ok", floor
    assert floor["wall_s"] > 0 and floor["peak_rss_mb"] > 10 and floor["ratio"] == 1.0
    for case in ("null_savefig", "mt_magicktune_threads", "mt_magicktune_blit"):
        assert by[(5, case)]["status"] == "ok", by[(5, case)]
    assert by[(5, "null_savefig")]["output_bytes"] is None
    pillow = by[(5, "mpl_pillow")]
    assert pillow["status"] == "ok", pillow
    assert pillow["output_bytes"] > 0
    q = pillow["quality"]
    assert q["frames_decoded"] == 5 and q["frames_evaluated"] == 5
    assert 20 < q["psnr_min"] <= q["psnr_mean"] <= 100
    assert q["expected_play_s"] == pytest.approx(5 / 30)
    raw = by[(5, "dump_raw")]
    assert raw["output_bytes"] == 5 * 432 * 720 * 4
    for r in doc["results"]:
        if r["case"].startswith("mt_") and r["status"] == "unavailable":
            assert "magicktune" in r["error"]
    ours = by[(5, "mt_encode")]
    assert ours["status"] == "ok" and ours["quality"]["static_changed"] == 0, ours
    assert by[(5, "mt_encode_q50")]["status"] == by[(5, "mt_encode_octree")]["status"] == "ok"
    pngquant = by[(5, "pngquant_encode")]
    assert pngquant["status"] in {"ok", "unavailable"}, pngquant  # make bench installs pngquant and gifsicle
    if pngquant["status"] == "ok":
        assert pngquant["quality"]["frames_decoded"] == 5 and pngquant["quality"]["psnr_min"] > 20


def test_scratch_is_cleaned_and_reports_render(smoke: tuple[dict, Path]) -> None:
    doc, root = smoke
    assert not (root / "out").exists()
    assert (root / "results" / "smoke.png").stat().st_size > 0
    table = report.markdown(doc)
    assert "| `mpl_pillow` |" in table and "seed, 5 frames" in table and "cores" in table
    assert table.startswith("Run `smoke` at") and "--frames seed=3,5" in doc["command"]  # not pytest's arguments
    assert doc["machine"]["cores"] and doc["imagemagick_variants"]["stock"]["sets"] == {}


def test_cli_table_flag(smoke: tuple[dict, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, root = smoke
    assert main(["--table", str(root / "results" / "smoke.json")]) == 0
    assert "| case |" in capsys.readouterr().out


def test_a_run_is_called_by_its_name_however_it_was_given() -> None:
    assert report.run_name({"name": "s24", "mode": "full"}) == "s24"
    assert report.run_name({"command": "python -m benchmarks --name=s24 --frames lines=3", "mode": "full"}) == "s24"
    assert report.run_name({"command": "python -m benchmarks --name s24", "mode": "full"}) == "s24"
    assert report.run_name({"command": "python -m benchmarks --quick", "mode": "quick"}) == "quick"


def test_flicker_counts_static_source_pixels_that_change_in_the_gif(tmp_path: Path) -> None:
    frames = np.zeros((3, 4, 6, 4), np.uint8)
    frames[..., 3] = 255
    frames[2, 0, 0, :3] = 255  # one pixel changes in the source, at frame 2
    raw = tmp_path / "src.rgba"
    raw.write_bytes(frames.tobytes())
    shown = frames[..., :3].copy()
    shown[1, 3, :2] = 10  # the GIF changes two pixels the source keeps, at frame 1 (and back at frame 2)
    gif = tmp_path / "out.gif"
    images = [Image.fromarray(f) for f in shown]
    images[0].save(gif, save_all=True, append_images=images[1:], duration=50, loop=0, optimize=False)
    q = evaluate(gif, raw, (6, 4), fps=20)
    assert q.static_changed == 4 and q.static_changed_max == 2


def test_psnr_of_a_lossless_gif_is_capped(tmp_path: Path) -> None:
    """Two flat-colour frames survive GIF exactly: PSNR is the 100 dB cap and play time adds up."""
    frames = np.zeros((2, 4, 6, 4), np.uint8)
    frames[..., 3] = 255
    frames[0, ..., 0] = 200
    frames[1, ..., 2] = 100
    raw = tmp_path / "src.rgba"
    raw.write_bytes(frames.tobytes())
    images = [Image.fromarray(f[..., :3]) for f in frames]
    gif = tmp_path / "out.gif"
    images[0].save(gif, save_all=True, append_images=images[1:], duration=50, loop=0)
    q = evaluate(gif, raw, (6, 4), fps=20)
    assert q.psnr_min == q.psnr_mean == 100.0
    assert q.play_s == pytest.approx(0.1) and q.expected_play_s == pytest.approx(0.1)


def test_repeated_rounds_pair_each_run_with_the_floor_of_its_round() -> None:
    from benchmarks.suite import add_ratios

    def record(case: str, walls: list[float]) -> dict:
        return {"workload": "seed", "frames": 9, "case": case, "kind": "e2e", "status": "ok", "wall_s": min(walls),
                "wall_s_all": walls, "runs": len(walls)}  # fmt: skip

    floor, save, once = record("render_only", [10.0, 20.0]), record("mt_magicktune", [11.0, 21.0]), record("x", [12.0])
    add_ratios([floor, save, once])
    # the machine ran at half speed in round 2: best against best (11 / 10) would say 1.10
    assert save["ratio"] == pytest.approx((11 / 10 + 21 / 20) / 2, abs=1e-3)
    assert save["ratio_range"] == [1.05, 1.1]
    assert floor["ratio"] == 1.0 and once["ratio"] == 1.2 and "ratio_range" not in once


def test_repeat_runs_cases_in_rounds_and_measures_pss(tmp_path: Path) -> None:
    results = tmp_path / "results"
    argv = ["--quick", "--frames", "seed=3", "--cases", "render_only,mt_encode", "--repeat", "2", "--name", "rounds"]
    assert main([*argv, "--results-dir", str(results), "--out-dir", str(tmp_path / "out"), "--timeout", "240"]) == 0
    doc = json.loads((results / "rounds.json").read_text())
    by_case = {r["case"]: r for r in doc["results"]}
    assert "runs" not in by_case["dump_raw"]  # the reference stream is dumped once
    for case in ("render_only", "mt_encode"):
        record = by_case[case]
        assert record["status"] == "ok" and record["runs"] == 2 and len(record["wall_s_all"]) == 2
        assert 0 < record["peak_pss_mb"] <= record["peak_rss_mb"]
    assert by_case["render_only"]["ratio_range"] == [1.0, 1.0]


def test_a_run_says_when_the_code_measured_is_not_the_commit(tmp_path: Path) -> None:
    import shutil
    import subprocess

    from benchmarks.machine import _git_commit

    if shutil.which("git") is None:
        pytest.skip("git is not installed here (the ImageMagick 7 chroot): no repository to make")

    def git(*arguments: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *arguments], check=True, capture_output=True, timeout=30)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    clean = _git_commit(tmp_path)
    assert clean and "+" not in clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert _git_commit(tmp_path) == f"{clean}+changes"


def test_a_case_failing_in_a_later_round_is_reported_failed_with_the_rounds_it_passed() -> None:
    from benchmarks.suite import merge_runs

    ok = {"status": "ok", "wall_s": 3.0, "peak_rss_mb": 90.0, "peak_pss_mb": 70.0}
    failed = {"status": "failed", "error": "timed out", "wall_s": 9.0, "peak_rss_mb": 95.0, "peak_pss_mb": 71.0}
    record = merge_runs([ok, {**ok, "wall_s": 2.0}, failed])
    assert record["status"] == "failed" and record["error"] == "timed out"
    assert record["failed_round"] == 3 and record["runs"] == 3 and record["wall_s_all"] == [3.0, 2.0]
    merged = merge_runs([ok, {**ok, "wall_s": 2.0, "peak_rss_mb": 80.0}])
    assert merged["wall_s"] == 2.0 and merged["peak_rss_mb"] == 90.0 and "failed_round" not in merged


@pytest.mark.parametrize("name", ["field", "heatmap"])
def test_a_workload_frame_depends_only_on_its_index(name: str) -> None:
    """Every case renders the same pixels only if frame i is the same however the frames before it were drawn."""
    from benchmarks.workloads import WORKLOADS

    def frame(animation: object, index: int) -> bytes:
        animation._func(index)  # type: ignore[attr-defined]
        figure = animation._fig  # type: ignore[attr-defined]
        for artist in figure.findobj():
            artist.set_animated(False)  # a plain draw leaves animated artists out, as on screen
        figure.canvas.draw()
        return bytes(figure.canvas.buffer_rgba())

    in_order = WORKLOADS[name].build(4)
    for index in range(3):
        expected = frame(in_order, index)
    jumped = WORKLOADS[name].build(4)
    assert frame(jumped, 2) == expected
    assert frame(jumped, 0) != expected
    assert jumped._fig.canvas.get_width_height() == WORKLOADS[name].size  # type: ignore[attr-defined]


def test_frame_times_prints_each_writers_grabs(capsys: pytest.CaptureFixture[str]) -> None:
    before = encoder.STARTING_FRAMES
    frame_times.main(["--frames", "5", "--starting-frames", "0"])
    assert encoder.STARTING_FRAMES == before  # put back for whatever runs next
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["floor", "magicktune"]
    assert all(len(line.split("|")[0].split()) == 2 + 5 for line in lines)  # "label ms:" and 5 frame times
