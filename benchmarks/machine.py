"""Describe the machine and the software a run measured, so a results file says where it came from."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psutil


def _first_line(argv: list[str], pattern: str = "") -> str | None:
    """First output line of ``argv`` matching ``pattern`` (or the first line), None if it can't run."""
    if not shutil.which(argv[0]):
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if re.search(pattern, line):
            return line.strip()
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def _git(repo: Path, *arguments: str) -> str | None:
    """What a git command prints in `repo`, stripped; None where git cannot answer."""
    try:
        out = subprocess.run(["git", "-C", str(repo), *arguments], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _git_commit(repo: Path) -> str | None:
    """HEAD's short hash, with "+changes" where the tree differs from it (changed files, or new ones git does not
    ignore): the code measured is not the commit's."""
    commit = _git(repo, "rev-parse", "--short", "HEAD")
    if commit and _git(repo, "status", "--porcelain"):
        commit += "+changes"
    return commit or None


def describe(repo: Path) -> dict[str, Any]:
    """CPU, cores, RAM, OS, kernel, load, and the versions of everything that encodes."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "os": _os_name(),
        "kernel": platform.release(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "matplotlib": _version("matplotlib"),
        "pillow": _version("pillow"),
        "numpy": _version("numpy"),
        "magicktune": _version("magicktune"),
        "git_commit": _git_commit(repo),
        "imagemagick": _first_line(["convert", "-version"], r"^Version:"),
        "ffmpeg": _first_line(["ffmpeg", "-version"], r"^ffmpeg version"),
    }


def summary(machine: dict[str, Any]) -> str:
    """One line for the README: "<cpu>, N cores, X GB RAM, <os>; ImageMagick ..., ffmpeg ...; Python ..."."""
    im = (machine.get("imagemagick") or "ImageMagick: none").replace("Version: ", "")
    im = " ".join(im.split()[:3])
    ff = " ".join((machine.get("ffmpeg") or "ffmpeg: none").split()[:3])
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['ram_gb']} GB RAM, {machine['os']}; "
        f"{im}; {ff}; Python {machine['python']}, matplotlib {machine['matplotlib']}, "
        f"Pillow {machine['pillow']}"
    )
