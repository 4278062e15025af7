"""magicktune: make ImageMagick fast and predictable on big jobs, above all matplotlib's animated GIFs."""

__version__ = "0.1.0"
