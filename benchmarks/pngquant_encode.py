"""The strongest palette anchor: Debian's pngquant on each frame (no dither), then ``gifsicle -O3`` over the whole.

pngquant (libimagequant) builds each frame's palette; gifsicle joins the frames and optimizes them (transparency
for unchanged pixels, crops). Frames go through in batches of 100 so the scratch PNGs stay bounded. Run as
``python -m benchmarks.pngquant_encode RAW WxH FPS OUT``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

BATCH = 100


def main(argv: list[str]) -> int:
    raw, size, fps, out = argv
    width, height = (int(v) for v in size.split("x"))
    frame_bytes = width * height * 4
    delay = str(round(100 / float(fps)))  # centiseconds, as convert and Pillow round it
    with tempfile.TemporaryDirectory(prefix="pngquant-") as scratch, open(raw, "rb") as stream:
        work = Path(scratch)
        gifs: list[str] = []
        done = False
        while not done:
            pngs = []
            while len(pngs) < BATCH:
                chunk = stream.read(frame_bytes)
                if len(chunk) < frame_bytes:
                    done = True
                    break
                path = work / f"f{len(gifs) + len(pngs):06d}.png"
                Image.frombuffer("RGBA", (width, height), chunk, "raw", "RGBA", 0, 1).save(path, compress_level=0)
                pngs.append(path)
            if not pngs:
                break
            subprocess.run(["pngquant", "--nofs", "--force", "--ext", ".q.png", "256", *map(str, pngs)], check=True)
            for path in pngs:
                gif = path.with_suffix(".gif")
                with Image.open(path.with_suffix(".q.png")) as quantized:
                    quantized.save(gif, optimize=False)
                path.unlink()
                path.with_suffix(".q.png").unlink()
                gifs.append(str(gif))
        subprocess.run(
            ["gifsicle", "-O3", "--no-warnings", "--loopcount=forever", "--delay", delay, *gifs, "-o", out],
            check=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
