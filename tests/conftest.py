"""Fixtures shared by the test modules; GIF helpers are in helpers.py."""

import pytest

from magicktune import magick


@pytest.fixture(scope="session")
def im():
    """The real ImageMagick on this machine (a module may override this fixture to skip where it cannot show)."""
    return magick.find()
