"""ImageMagick environments the anchors run under: the machine's stock policy, the env-var advice, a raised policy.

Under Debian's policy.xml an environment variable can only lower a limit the policy caps, so the advice users
find online (``export MAGICK_MEMORY_LIMIT=...``) silently changes nothing; we record what it does. The real
"convert with enough memory" anchor prepends a directory holding a policy.xml that restates the resources to
MAGICK_CONFIGURE_PATH (first file naming a resource wins).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

# The exact line from the Stack Overflow answer users find.
ENV_ADVICE = {"MAGICK_MEMORY_LIMIT": "4294967296"}

RAISED_POLICY = """<?xml version="1.0" encoding="UTF-8"?>
<!-- magicktune benchmarks: limits raised by hand, enough for 3000 frames of 432x720 at Q16 (9.3 GB). -->
<policymap>
  <policy domain="resource" name="memory" value="12GiB"/>
  <policy domain="resource" name="map" value="24GiB"/>
  <policy domain="resource" name="disk" value="48GiB"/>
  <policy domain="resource" name="area" value="4GP"/>
  <policy domain="resource" name="list-length" value="1000000"/>
</policymap>
"""

VARIANTS = ("stock", "env", "policy")


def convert_binary() -> str | None:
    """The `convert` matplotlib would run (first on PATH), or None."""
    return shutil.which("convert")


def clean_env() -> dict[str, str]:
    """The current environment without any MAGICK_* variable: the machine's stock configuration."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MAGICK_")}


def variant_env(variant: str, scratch: Path) -> dict[str, str]:
    """Environment for one ImageMagick variant; writes the raised policy.xml under ``scratch`` if needed."""
    env = clean_env()
    if variant == "env":
        env.update(ENV_ADVICE)
    elif variant == "policy":
        policy_dir = scratch / "policy-raised"
        policy_dir.mkdir(parents=True, exist_ok=True)
        (policy_dir / "policy.xml").write_text(RAISED_POLICY)
        env["MAGICK_CONFIGURE_PATH"] = str(policy_dir)
    elif variant != "stock":
        raise ValueError(f"unknown ImageMagick variant {variant!r}")
    return env


def effective_limits(env: dict[str, str]) -> dict[str, str]:
    """`identify -list resource` under ``env``, as {resource: value}; empty if identify is missing."""
    if not shutil.which("identify"):
        return {}
    try:
        out = subprocess.run(
            ["identify", "-list", "resource"], env=env, capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    limits = {}
    for line in out.splitlines():
        match = re.match(r"\s+([A-Za-z ]+):\s+(\S+)\s*$", line)
        if match:
            limits[match.group(1).strip().lower()] = match.group(2)
    return limits


def describe_variants(scratch: Path) -> dict[str, dict[str, object]]:
    """What each variant sets and the limits ImageMagick actually ends up with (for the JSON)."""
    described: dict[str, dict[str, object]] = {}
    for variant in VARIANTS:
        env = variant_env(variant, scratch)
        sets = {k: v for k, v in env.items() if k.startswith("MAGICK_")}
        entry: dict[str, object] = {"sets": sets, "effective_limits": effective_limits(env)}
        if variant == "policy":
            entry["policy_xml"] = RAISED_POLICY
        described[variant] = entry
    return described
