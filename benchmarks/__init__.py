"""Benchmarks answering "how much faster, in how much memory, at what quality, than what I do now".

Entry point: ``python -m benchmarks`` (or ``make bench``). Every measured case runs in a fresh
interpreter or command so its peak RSS (whole process tree) is its own; see ``measure.py``.
"""
