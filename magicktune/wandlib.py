"""The ctypes layer: our own handles on the ImageMagick libraries Wand loaded, the C prototypes we call on them, and
a bare MagickWand. Wand's shared `wand.api.library` keeps Wand's prototypes; nothing here changes them."""

from __future__ import annotations

import ctypes
import os
from ctypes import POINTER, c_char_p, c_int, c_size_t, c_ssize_t, c_ulonglong, c_void_p

import numpy as np
import wand.api
import wand.resource
from wand.image import COLORSPACE_TYPES, DITHER_METHODS, STORAGE_TYPES, Image
from wand.version import MAGICK_HDRI, MAGICK_VERSION, MAGICK_VERSION_NUMBER, QUANTUM_DEPTH

from . import magick
from .errors import EncodeError, InvalidValue
from .units import human

#: ImageMagick's MagickBooleanType, an int-sized C enum (Wand declares it c_bool).
MagickBooleanType = c_int
#: ColorspaceType, DitherMethod, StorageType and ExceptionType are C enums too.
Enum = c_int


# --- finding the libraries Wand loaded ---------------------------------------------------------------


class _DlInfo(ctypes.Structure):
    """POSIX dladdr's Dl_info (dlfcn.h)."""

    _fields_ = [("dli_fname", c_char_p), ("dli_fbase", c_void_p), ("dli_sname", c_char_p), ("dli_saddr", c_void_p)]


def _address(lib: ctypes.CDLL, symbol: str) -> int | None:
    """Where `symbol` is in memory as `lib` resolves it: the same address means the same loaded library."""
    return ctypes.cast(getattr(lib, symbol), c_void_p).value


def _file_holding(address: int | None) -> str | None:
    """The file of the loaded shared library that holds `address`, by dladdr; None where there is no dladdr."""
    try:
        dladdr = ctypes.CDLL(None).dladdr
    except (AttributeError, OSError, TypeError):  # Windows has no dladdr (and no CDLL(None))
        return None
    dladdr.argtypes = [c_void_p, POINTER(_DlInfo)]
    dladdr.restype = c_int
    info = _DlInfo()
    if not address or not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.fsdecode(info.dli_fname)


def _library_files() -> tuple[str, str]:
    """The libMagickWand and libMagickCore files Wand loaded (they may be one file).

    dladdr names the file that holds a symbol Wand resolved, in microseconds. Without it, walk
    `wand.api.library_paths()` in `wand.api.load_library()`'s order and take the first pair that loads, as Wand
    did (0.3-0.8 s measured here: each candidate costs a `ctypes.util.find_library`).
    """
    found = (
        _file_holding(_address(wand.api.library, "MagickWandGenesis")),
        _file_holding(_address(wand.api.libmagick, "GetMagickVersion")),
    )
    if found[0] and found[1]:
        return found  # type: ignore[return-value]
    for wand_path, core_path in wand.api.library_paths():
        if wand_path is None or core_path is None:
            continue
        try:
            ctypes.CDLL(str(wand_path))
            ctypes.CDLL(str(core_path))
        except OSError:
            continue
        return str(wand_path), str(core_path)
    raise ImportError("cannot find the ImageMagick libraries Wand loaded")


_WAND_FILE, _CORE_FILE = _library_files()
#: libMagickWand, for the calls that do a frame's work: through a CDLL they release the GIL.
magickwand = ctypes.CDLL(_WAND_FILE)
#: The same libMagickWand, for calls that take microseconds: through a PyDLL they keep the GIL (see MagickWand).
quick = ctypes.PyDLL(_WAND_FILE)
#: libMagickCore (the same file as libMagickWand where ImageMagick ships one library), for IM6's QuantizeImage.
magickcore = ctypes.CDLL(_CORE_FILE)

# dlopen of a loaded library's file returns that library, so ImageMagick's global state (MagickWandGenesis, the
# resource limits Wand sets) is shared; check it is so, by where each handle finds a function Wand resolved.
for _ours, _theirs, _symbol, _file in (
    (magickwand, wand.api.library, "MagickWandGenesis", _WAND_FILE),
    (quick, wand.api.library, "MagickWandGenesis", _WAND_FILE),
    (magickcore, wand.api.libmagick, "GetMagickVersion", _CORE_FILE),
):
    if _address(_ours, _symbol) != _address(_theirs, _symbol):
        raise ImportError(f"{_file} is not the ImageMagick library Wand loaded: its {_symbol} is elsewhere")
del _ours, _theirs, _symbol, _file


def loaded_build() -> tuple[str, str, int, int, bool]:
    """The libMagickWand Wand loaded, which `writer="magicktune"` encodes with: (file, label, major, quantum depth,
    HDRI). It can differ from the `magick` on PATH when several builds are installed (Wand takes the first it finds
    unless MAGICK_HOME or WAND_MAGICK_LIBRARY_SUFFIX says otherwise)."""
    facts = magick.parse_version(f"Version: {MAGICK_VERSION}")
    hdri = bool(MAGICK_HDRI) or facts["hdri"]
    label = f"ImageMagick {facts['version']} Q{QUANTUM_DEPTH}{'-HDRI' if hdri else ''}"
    return _WAND_FILE, label, facts["major"], QUANTUM_DEPTH, hdri


def mismatch(im: magick.ImageMagick) -> str | None:
    """What differs between the `magick` binary and the libMagickWand Wand loaded (major, depth, HDRI), or None."""
    _, label, major, depth, hdri = loaded_build()
    if (major, depth, hdri) == (im.major, im.quantum_depth, im.hdri):
        return None
    return (
        f"{' '.join(im.convert)} is {im.label} but Wand loaded {label} ({_WAND_FILE}): plans are sized for the "
        f"binary while writer='magicktune' encodes with the library; pick one build with MAGICKTUNE_IMAGEMAGICK, "
        f"or WAND_MAGICK_LIBRARY_SUFFIX (e.g. -7.Q16HDRI) or MAGICK_HOME"
    )


# --- prototypes: libMagickWand, releasing the GIL ----------------------------------------------------

magickwand.GetImageFromMagickWand.argtypes = [c_void_p]
magickwand.GetImageFromMagickWand.restype = c_void_p
magickwand.MagickConstituteImage.argtypes = [c_void_p, c_size_t, c_size_t, c_char_p, Enum, c_void_p]
magickwand.MagickConstituteImage.restype = MagickBooleanType
# IM6 takes a MagickBooleanType for dither, IM7 a DitherMethod: an int either way.
magickwand.MagickQuantizeImage.argtypes = [c_void_p, c_size_t, Enum, c_size_t, c_int, MagickBooleanType]
magickwand.MagickQuantizeImage.restype = MagickBooleanType
magickwand.MagickRemapImage.argtypes = [c_void_p, c_void_p, Enum]
magickwand.MagickRemapImage.restype = MagickBooleanType
magickwand.MagickExportImagePixels.argtypes = [
    c_void_p,
    c_ssize_t,
    c_ssize_t,
    c_size_t,
    c_size_t,
    c_char_p,
    Enum,
    c_void_p,
]
magickwand.MagickExportImagePixels.restype = MagickBooleanType
magickwand.MagickReadImageBlob.argtypes = [c_void_p, c_void_p, c_size_t]
magickwand.MagickReadImageBlob.restype = MagickBooleanType
magickwand.MagickGetImageBlob.argtypes = [c_void_p, POINTER(c_size_t)]
# A bare address, not POINTER(c_ubyte): casting that back for MagickRelinquishMemory builds a reference cycle per
# frame, which Python 3.13's later-running collector keeps long enough to fail the constant-memory test.
magickwand.MagickGetImageBlob.restype = c_void_p

# --- prototypes: libMagickWand, keeping the GIL ------------------------------------------------------

quick.NewMagickWand.argtypes = []
quick.NewMagickWand.restype = c_void_p
quick.DestroyMagickWand.argtypes = [c_void_p]
quick.DestroyMagickWand.restype = c_void_p
quick.MagickSetFormat.argtypes = quick.MagickSetImageFormat.argtypes = [c_void_p, c_char_p]
quick.MagickSetFormat.restype = quick.MagickSetImageFormat.restype = MagickBooleanType
quick.MagickRelinquishMemory.argtypes = [c_void_p]
quick.MagickRelinquishMemory.restype = c_void_p
quick.MagickGetException.argtypes = [c_void_p, POINTER(c_int)]
quick.MagickGetException.restype = c_void_p
quick.MagickGetResourceLimit.argtypes = [Enum]
quick.MagickGetResourceLimit.restype = c_ulonglong  # MagickSizeType
quick.MagickWandGenesis.argtypes = []
quick.MagickWandGenesis.restype = None


# --- the limits this process's ImageMagick has -------------------------------------------------------

#: ResourceType, in each major version's order (magick/resource_.h, MagickCore/resource_.h).
_RESOURCE_TYPES = (
    ("undefined", "area", "disk", "file", "map", "memory", "thread", "time", "throttle", "width", "height")
    if MAGICK_VERSION_NUMBER < 0x700
    else ("undefined", "area", "disk", "file", "height", "map", "memory", "thread", "throttle", "time", "width")
)
#: Pixel-cache bytes of one pixel in this library: RGBA at the quantum's size (HDRI keeps floats).
CACHE_BYTES_PER_PIXEL = 4 * (4 if MAGICK_HDRI else QUANTUM_DEPTH // 8)


def resource_limit(name: str) -> int | None:
    """This process's ImageMagick limit on `name` ('width', 'area', 'memory', ...), asked of the library; None for
    unlimited (IM prints 2**63 - 1 and more as unlimited).

    ImageMagick reads its policy and MAGICK_*_LIMIT variables at genesis, which Wand leaves to the first wand;
    before it, the library answers with placeholder values (2**60 - 1 for width), so start it first (it starts
    once: later calls return at once).
    """
    quick.MagickWandGenesis()
    value = quick.MagickGetResourceLimit(_RESOURCE_TYPES.index(name))
    return None if value >= 2**63 - 1 else value


def _room(limit: int | None, each: int) -> int | None:
    """How many of `each` fit under `limit` (None: no bound); ImageMagick grants a request only while the total
    stays below the limit, not at it."""
    return None if limit is None else max(0, (limit - 1) // each)


def images_that_fit(width: int, height: int, bytes_per_pixel: int = CACHE_BYTES_PER_PIXEL) -> int | None:
    """How many width x height images this process's ImageMagick can hold at once: in memory while the area and
    memory limits allow, then on disk; None for no bound."""
    pixels, cache = width * height, width * height * bytes_per_pixel
    rooms = (_room(resource_limit("area"), pixels), _room(resource_limit("memory"), cache))
    in_memory = min((room for room in rooms if room is not None), default=None)
    on_disk = _room(resource_limit("disk"), cache)
    if in_memory is None or on_disk is None:
        return None
    return in_memory + on_disk


def check_frame_fits(width: int, height: int) -> None:
    """Refuse a frame this process's ImageMagick cannot hold, before it is asked to.

    Past its width or height limit (Debian's policy has 16KP) ImageMagick 6.9.11's ConstituteImage does not
    return an error: it goes on with no image and aborts the whole process (`ResetImagePixels: Assertion
    'image != NULL'`). It does the same when a frame's pixel cache fits neither in memory (area and memory
    limits) nor on disk (disk limit). Measured at the edge: a 100x100 RGBA frame (80,000 bytes in Q16) aborts
    under MAGICK_AREA_LIMIT=100 MAGICK_DISK_LIMIT=80000 and is read under MAGICK_DISK_LIMIT=80001.
    """
    for name, size in (("width", width), ("height", height)):
        limit = resource_limit(name)
        if limit is not None and size > limit:
            raise InvalidValue(
                f"a {width}x{height} frame is {size} pixels in {name}, past ImageMagick's {name} limit here of "
                f"{human(limit, 'pixels')}: use frames at most {limit} pixels in {name}, or raise the limit before "
                f"ImageMagick starts in this process (policy.xml's '{name}' caps MAGICK_{name.upper()}_LIMIT; a "
                f"policy.xml first on MAGICK_CONFIGURE_PATH can raise it)"
            )
    if images_that_fit(width, height) == 0:
        area, memory, disk = (
            human(resource_limit("area"), "pixels"),
            human(resource_limit("memory")),
            human(resource_limit("disk")),
        )
        raise InvalidValue(
            f"a {width}x{height} frame needs {human(width * height * CACHE_BYTES_PER_PIXEL)} of pixel cache, more "
            f"than ImageMagick's limits here allow (area {area}, memory {memory}, disk {disk}): use smaller "
            f"frames, or raise the disk or memory limit before ImageMagick starts in this process"
        )


# --- libMagickCore: IM6's QuantizeImage --------------------------------------------------------------


class _QuantizeInfo6(ctypes.Structure):
    """IM6's QuantizeInfo (magick/quantize.h)."""

    _fields_ = [
        ("number_colors", ctypes.c_size_t),
        ("tree_depth", ctypes.c_size_t),
        ("dither", ctypes.c_int),
        ("colorspace", ctypes.c_int),
        ("measure_error", ctypes.c_int),
        ("signature", ctypes.c_size_t),
        ("dither_method", ctypes.c_int),
    ]


if MAGICK_VERSION_NUMBER < 0x700:
    magickcore.AcquireQuantizeInfo.restype = ctypes.POINTER(_QuantizeInfo6)
    magickcore.AcquireQuantizeInfo.argtypes = [ctypes.c_void_p]
    magickcore.QuantizeImage.argtypes = [ctypes.POINTER(_QuantizeInfo6), ctypes.c_void_p]
    magickcore.QuantizeImage.restype = MagickBooleanType
    magickcore.DestroyQuantizeInfo.argtypes = [ctypes.POINTER(_QuantizeInfo6)]
    magickcore.DestroyQuantizeInfo.restype = c_void_p


def quantize_im6(image: Image, colors: int, dither_method: int, treedepth: int) -> None:
    """IM6's MagickQuantizeImage cannot pick Floyd-Steinberg, so call QuantizeImage with a QuantizeInfo of our own."""
    frame = magickwand.GetImageFromMagickWand(image.wand)
    if not frame:
        raise EncodeError("ImageMagick has no image to quantize")
    info = magickcore.AcquireQuantizeInfo(None)
    if not info:
        raise EncodeError("ImageMagick could not allocate a QuantizeInfo (out of memory)")
    try:
        info.contents.number_colors = colors
        info.contents.tree_depth = treedepth
        info.contents.dither = 1
        info.contents.dither_method = dither_method
        if not magickcore.QuantizeImage(info, frame):
            image.raise_exception()
            raise EncodeError("ImageMagick QuantizeImage failed")
    finally:
        magickcore.DestroyQuantizeInfo(info)


# --- a bare MagickWand --------------------------------------------------------------------------------

_NO_DITHER_METHOD = DITHER_METHODS.index("no")  # Wand's name for NoDitherMethod
_NO_DITHER = 0 if MAGICK_VERSION_NUMBER < 0x700 else _NO_DITHER_METHOD  # MagickQuantizeImage takes a boolean in IM6


class MagickWand:
    """A bare MagickWand for the per-frame path, one library call per step.

    Each library call lets a thread that is busy in Python (matplotlib drawing the next frame) take the GIL,
    which the worker then waits up to the switch interval to get back. Wand's Image makes some 30 calls a
    frame; here only the 5 that do the work release the GIL.
    """

    def __init__(self) -> None:
        self.handle = quick.NewMagickWand()
        if not self.handle:
            raise EncodeError("ImageMagick could not make a MagickWand (out of memory)")

    def __enter__(self) -> MagickWand:
        return self

    def __exit__(self, *exc_info) -> None:
        quick.DestroyMagickWand(self.handle)

    def _check(self, ok: bool, doing: str) -> None:
        if not ok:
            severity = ctypes.c_int()
            text = quick.MagickGetException(self.handle, ctypes.byref(severity))
            message = ctypes.string_at(text).decode("utf-8", "replace") if text else "no reason given"
            quick.MagickRelinquishMemory(text)
            raise EncodeError(f"ImageMagick failed to {doing}: {message}")

    def constitute(self, pixels: np.ndarray, channel_map: str) -> None:
        """Read an (h, w, 4) C-contiguous uint8 array, its bytes named by `channel_map` ('RGBA', or 'RGBP' to
        skip alpha)."""
        height, width = pixels.shape[:2]
        self._check(
            magickwand.MagickConstituteImage(
                self.handle, width, height, channel_map.encode("ascii"), STORAGE_TYPES.index("char"), pixels.ctypes.data
            ),
            "import the frame",
        )

    def quantize(self, colors: int, treedepth: int) -> None:
        self._check(
            magickwand.MagickQuantizeImage(
                self.handle, colors, COLORSPACE_TYPES.index("srgb"), treedepth, _NO_DITHER, False
            ),
            "quantize",
        )

    def remap(self, palette: MagickWand) -> None:
        self._check(magickwand.MagickRemapImage(self.handle, palette.handle, _NO_DITHER_METHOD), "remap")

    def export_rgba(self, height: int, width: int) -> np.ndarray:
        out = np.empty((height, width, 4), np.uint8)
        self._check(
            magickwand.MagickExportImagePixels(
                self.handle, 0, 0, width, height, b"RGBA", STORAGE_TYPES.index("char"), out.ctypes.data
            ),
            "export pixels",
        )
        return out

    def read(self, blob: bytes, format: str) -> None:
        self._check(quick.MagickSetFormat(self.handle, format.encode("ascii")), f"select {format}")
        self._check(magickwand.MagickReadImageBlob(self.handle, blob, len(blob)), f"read {format}")

    def blob(self, format: str) -> bytes:
        name = format.encode("ascii")
        self._check(
            quick.MagickSetFormat(self.handle, name) and quick.MagickSetImageFormat(self.handle, name),
            f"select {format}",
        )
        length = ctypes.c_size_t()
        data = magickwand.MagickGetImageBlob(self.handle, ctypes.byref(length))
        self._check(bool(data), f"write {format}")
        try:
            return ctypes.string_at(data, length.value)
        finally:
            quick.MagickRelinquishMemory(data)


# --- libMagickCore: the security policy's path rules ---------------------------------------------------

#: PolicyDomain's PathPolicyDomain and PolicyRights' WritePolicyRights (magick/policy.h; the same in IM7).
PATH_POLICY_DOMAIN = 4
WRITE_POLICY_RIGHTS = 0x02
magickcore.IsRightsAuthorized.argtypes = [Enum, Enum, c_char_p]
magickcore.IsRightsAuthorized.restype = MagickBooleanType


def may_write(path: str) -> bool:
    """Whether the policy ImageMagick loaded in this process lets it write `path` (its path rules, as convert
    checks its output file); our in-process encoder writes to memory, so ImageMagick itself never asks."""
    wand.resource.genesis()
    return bool(magickcore.IsRightsAuthorized(PATH_POLICY_DOMAIN, WRITE_POLICY_RIGHTS, os.fsencode(path)))
