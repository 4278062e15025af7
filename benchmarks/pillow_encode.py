"""Encode a raw RGBA stream to GIF exactly as matplotlib's PillowWriter does, without rendering.

Lets the 3000-frame run show Pillow's time and memory (it keeps every frame, then quantizes each on save)
without paying for another full render. Run as ``python -m benchmarks.pillow_encode RAW WxH FPS OUT``.
"""

from __future__ import annotations

import sys

from PIL import Image


def main(argv: list[str]) -> int:
    raw, size, fps, out = argv
    width, height = (int(v) for v in size.split("x"))
    frame_bytes = width * height * 4
    frames = []
    with open(raw, "rb") as stream:
        while chunk := stream.read(frame_bytes):
            im = Image.frombuffer("RGBA", (width, height), chunk, "raw", "RGBA", 0, 1)
            # PillowWriter.grab_frame: opaque frames go to RGB, which quantizes better for GIF.
            frames.append(im if im.getextrema()[3][0] < 255 else im.convert("RGB"))
    # PillowWriter.finish
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=int(1000 / float(fps)), loop=0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
