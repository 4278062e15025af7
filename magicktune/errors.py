"""Every exception and warning magicktune raises, in one tree, so callers catch by class.

Each error also keeps the builtin base it always had (ValueError for bad input, RuntimeError for a tool that
failed), so `except ValueError` written against earlier releases still works.
"""

from __future__ import annotations


class MagickTuneError(Exception):
    """Base of every error magicktune raises on purpose: the message says what was wrong and what to do."""


class InvalidValue(MagickTuneError, ValueError):
    """A value given to magicktune (a size, a limit, a frame size, an option) that it cannot use."""


class UsageError(InvalidValue):
    """Bad command-line input."""


class ConfigError(InvalidValue):
    """A preset or the user's config.yaml that cannot be used."""


class PolicyError(MagickTuneError, ValueError):
    """A policy file that cannot be read, or a value that cannot be written into one."""


class PolicySyntaxError(PolicyError):
    """A policy file that is not well-formed XML; ImageMagick's own, lenient reader may still load it."""


class ImageMagickNotFound(MagickTuneError, RuntimeError):
    """No working ImageMagick could be run."""


class ImageMagickError(MagickTuneError, RuntimeError):
    """ImageMagick ran and failed."""


class ImageMagickFailed(ImageMagickError):
    """convert failed under the tuned writer; the message says which limit or rule stopped it and what to do."""


class EncodeError(MagickTuneError, RuntimeError):
    """Encoding stopped; no output file was left behind."""


class MagickTuneWarning(UserWarning):
    """Base of every warning magicktune gives."""


class LimitsWarning(MagickTuneWarning):
    """A requested limit that cannot take effect, or one that exceeds what the machine has."""


class WandStartedWarning(LimitsWarning):
    """Limits set after Wand started ImageMagick in this process reach only ImageMagick processes started later."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, turned into an interrupt while magicktune writes a file so that its cleanup runs (the
    partial file removed, convert stopped) before the process ends as the signal asked."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
