"""magicktune: make ImageMagick fast and predictable on big jobs, above all matplotlib's animated GIFs.

    import magicktune                       # registers writer='magicktune' and writer='imagemagick_tuned'
    with magicktune.limits(memory="10GB", disk="50GB"):
        ani.save("x.gif", writer="imagemagick", fps=30)
"""

__version__ = "0.1.0"

from . import writers as _writers  # noqa: F401  (registers the matplotlib writers)
from .limits import LimitsWarning, apply as apply_limits, limits, restore as restore_limits
from .magick import ImageMagickError, ImageMagickNotFound, find as find_imagemagick
from .profile import Job, Plan, plan

__all__ = ["limits", "apply_limits", "restore_limits", "LimitsWarning", "plan", "Plan", "Job",
           "find_imagemagick", "ImageMagickNotFound", "ImageMagickError"]
