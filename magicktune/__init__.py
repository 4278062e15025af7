"""magicktune: make ImageMagick fast and predictable on big jobs, above all matplotlib's animated GIFs.

import magicktune                       # registers writer='magicktune' and writer='imagemagick_tuned'
with magicktune.limits(memory="10GB", disk="50GB"):
    ani.save("x.gif", writer="imagemagick", fps=30)
"""

__version__ = "0.1.0"

from . import writers as _writers  # noqa: F401  (registers the matplotlib writers)
from .errors import (
    ConfigError,
    EncodeError,
    ImageMagickError,
    ImageMagickFailed,
    ImageMagickNotFound,
    InvalidValue,
    LimitsWarning,
    MagickTuneError,
    MagickTuneWarning,
    PolicyError,
    UsageError,
    WandStartedWarning,
)
from .magick import find as find_imagemagick
from .profile import Job, Plan, plan
from .resources import apply as apply_limits
from .resources import apply_resources, limits
from .resources import restore as restore_limits
from .units import UNLIMITED

__all__ = [
    "limits",
    "apply_limits",
    "apply_resources",
    "restore_limits",
    "UNLIMITED",
    "plan",
    "Plan",
    "Job",
    "find_imagemagick",
    "MagickTuneError",
    "InvalidValue",
    "UsageError",
    "ConfigError",
    "PolicyError",
    "ImageMagickNotFound",
    "ImageMagickError",
    "ImageMagickFailed",
    "EncodeError",
    "MagickTuneWarning",
    "LimitsWarning",
    "WandStartedWarning",
]
