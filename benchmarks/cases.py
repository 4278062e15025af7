"""The named cases: what each one runs, and whether it is end-to-end (render + save) or encode-only (raw stream).

End-to-end cases run ``benchmarks.child`` (a fresh interpreter that renders the workload and saves it with
one writer). Encode-only cases run a command on the raw RGBA stream dumped once per workload and size.
Nothing here imports matplotlib or magicktune: the parent stays small and the magicktune cases can be
"unavailable" (recorded, not fatal) while those modules are still being written.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

E2E = "e2e"
ENCODE = "encode"
#: The `quality` settings measured as magicktune's size/fidelity curve (mt_encode is quality 100): frames held to
#: PSNR 56, 54, 52, 50, 48, 46, 44, 40, 36 and 32 dB (quantizer.error_at). On 60 frames
#: (`python -m benchmarks.quality_steps`) the curve reaches the smallest anchors' bytes near quality 85 on lines,
#: 65 on seed, 60 on field and 40 on the photograph.
QUALITY_CURVE = (90, 85, 80, 75, 70, 65, 60, 50, 40, 30)


@dataclass(frozen=True)
class Case:
    """One measured way of producing the GIF."""

    name: str
    kind: str  # E2E or ENCODE
    label: str  # what a reader of the table sees
    variant: str = "stock"  # ImageMagick environment (see imagemagick.py)
    needs: tuple[str, ...] = ()  # executables or modules that must exist, else "unavailable"
    max_frames: int | None = None  # cap for slow anchors in full mode (None: every size)


CASES: dict[str, Case] = {
    c.name: c
    for c in [
        # -- end-to-end: render every frame and save (ani.save(..., writer=...)) --
        Case("render_only", E2E, "floor: update + one canvas draw + read the buffer per frame, save nothing"),
        Case(
            "null_savefig",
            E2E,
            "ani.save with a writer that savefigs to /dev/null: draw_idle + savefig, two draws a frame",
            max_frames=300,
        ),
        Case("dump_raw", E2E, "render + write raw RGBA stream (reference for encode-only and PSNR)"),
        Case(
            "mpl_imagemagick", E2E, "matplotlib ImageMagickWriter, stock policy (what users do now)", needs=("convert",)
        ),
        Case(
            "mpl_imagemagick_env",
            E2E,
            "matplotlib ImageMagickWriter + export MAGICK_MEMORY_LIMIT (online advice)",
            variant="env",
            needs=("convert",),
        ),
        Case(
            "mpl_imagemagick_policy",
            E2E,
            "matplotlib ImageMagickWriter, limits raised in policy.xml",
            variant="policy",
            needs=("convert",),
            max_frames=300,
        ),
        Case("mpl_pillow", E2E, "matplotlib PillowWriter", max_frames=300),
        Case("mpl_ffmpeg", E2E, "matplotlib FFMpegWriter (palettegen/paletteuse)", needs=("ffmpeg",), max_frames=300),
        Case(
            "mt_imagemagick_tuned",
            E2E,
            "magicktune writer 'imagemagick_tuned' (given frames=N)",
            needs=("magicktune.writers",),
        ),
        Case("mt_magicktune", E2E, "magicktune writer 'magicktune'", needs=("magicktune.writers",)),
        Case(
            "mt_magicktune_threads",
            E2E,
            "magicktune writer 'magicktune', processes=False (compressing in threads that share the GIL)",
            needs=("magicktune.writers",),
        ),
        Case(
            "mt_magicktune_blit",
            E2E,
            "magicktune writer 'magicktune', blit=True (animated artists on a cached background)",
            needs=("magicktune.writers",),
        ),
        # -- encode-only: the raw stream piped to an encoder, as matplotlib would pipe it --
        Case("convert_stock", ENCODE, "convert exactly as matplotlib runs it, stock policy", needs=("convert",)),
        Case(
            "convert_env",
            ENCODE,
            "same + export MAGICK_MEMORY_LIMIT=4294967296 (online advice)",
            variant="env",
            needs=("convert",),
        ),
        Case(
            "convert_policy",
            ENCODE,
            "same, limits raised in policy.xml (tuned convert: encode baseline)",
            variant="policy",
            needs=("convert",),
        ),
        Case("ffmpeg_encode", ENCODE, "ffmpeg with matplotlib's palettegen graph", needs=("ffmpeg",)),
        Case("pillow_encode", ENCODE, "Pillow, as PillowWriter saves (all frames held, then quantized)"),
        Case(
            "pngquant_encode",
            ENCODE,
            "pngquant per frame (no dither), then gifsicle -O3",
            needs=("pngquant", "gifsicle"),
        ),
        Case("mt_encode", ENCODE, "magicktune encode (CLI)", needs=("magicktune.cli",)),
        *[
            Case(f"mt_encode_q{q}", ENCODE, f"magicktune encode --quality {q}", needs=("magicktune.cli",))
            for q in QUALITY_CURVE
        ],
        Case(
            "mt_encode_octree",
            ENCODE,
            "magicktune encode --quantizer imagemagick (ImageMagick's octree, as before)",
            needs=("magicktune.cli",),
        ),
        Case(
            "mt_encode_stream",
            ENCODE,
            "magicktune.encoder.encode_stream() (the API under the CLI)",
            needs=("magicktune.encoder",),
        ),
    ]
}

FLOOR = "render_only"  # end-to-end ratios are to this
ENCODE_BASELINE = "convert_policy"  # encode-only ratios are to this


def missing_needs(case: Case) -> list[str]:
    """The needs of ``case`` this machine lacks (modules are found without importing them)."""
    missing = []
    for need in case.needs:
        if "." in need:
            try:
                found = importlib.util.find_spec(need) is not None
            except ModuleNotFoundError:
                found = False
        else:
            found = shutil.which(need) is not None
        if not found:
            missing.append(need)
    return missing


def magicktune_cli() -> list[str]:
    """argv prefix running ``magicktune``: the console script beside this interpreter, else ``-c`` on main."""
    script = Path(sys.executable).with_name("magicktune")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from magicktune.cli import main; sys.exit(main())"]


def _matplotlib_convert_args() -> list[str]:
    """matplotlib's ``animation.convert_args`` rcParam (``-layers OptimizePlus`` unless configured)."""
    import matplotlib  # not pyplot: cheap, and needed only for this one setting

    return list(matplotlib.rcParams["animation.convert_args"])


def encode_command(case: Case, raw: Path, size: tuple[int, int], fps: int, out: Path) -> tuple[list[str], bool]:
    """argv of an encode-only case and whether the raw stream goes to its stdin (else it is an argument)."""
    width, height = size
    if case.name.startswith("convert_"):
        # Byte for byte what matplotlib's ImageMagickWriter runs (its convert_args default to
        # -layers OptimizePlus); stdin is the raw stream.
        return [
            "convert",
            "-size",
            f"{width}x{height}",
            "-depth",
            "8",
            "-delay",
            str(100 / fps),
            "-loop",
            "0",
            "rgba:-",
            *_matplotlib_convert_args(),
            str(out),
        ], True
    if case.name == "ffmpeg_encode":
        # What matplotlib's FFMpegWriter runs for a .gif.
        return [
            "ffmpeg",
            "-f",
            "rawvideo",
            "-vcodec",
            "rawvideo",
            "-s",
            f"{width}x{height}",
            "-pix_fmt",
            "rgba",
            "-framerate",
            str(fps),
            "-loglevel",
            "error",
            "-i",
            "pipe:",
            "-filter_complex",
            "split [a][b];[a] palettegen [p];[b][p] paletteuse",
            "-y",
            str(out),
        ], True
    if case.name in ("pillow_encode", "pngquant_encode"):
        return [
            sys.executable,
            "-m",
            f"benchmarks.{case.name}",
            str(raw),
            f"{width}x{height}",
            str(fps),
            str(out),
        ], False
    if case.name == "mt_encode_stream":
        code = (
            "import sys; from magicktune.encoder import encode_stream; "
            "encode_stream(sys.argv[1], sys.argv[2], (int(sys.argv[3]), int(sys.argv[4])), float(sys.argv[5]))"
        )
        return [sys.executable, "-c", code, str(raw), str(out), str(width), str(height), str(fps)], False
    if case.name.startswith("mt_encode"):
        extra = {"mt_encode": [], "mt_encode_octree": ["--quantizer", "imagemagick"]}.get(case.name)
        if extra is None:
            extra = ["--quality", case.name.removeprefix("mt_encode_q")]
        return [
            *magicktune_cli(),
            "encode",
            "--size",
            f"{width}x{height}",
            "--fps",
            str(fps),
            *extra,
            str(raw),
            str(out),
        ], False
    raise ValueError(f"{case.name} is not an encode-only case")
