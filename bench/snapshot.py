"""Freezing the code under test for a benchmark: a git revision, or the working tree as it is
now, copied to a directory that goes first on PYTHONPATH (ahead of the editable installs), so
edits made while a benchmark runs change nothing and two revisions can be measured side by
side in one run."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("contracts/src", "libs/*/src", "tools/*/src", "services/*/src")
CODE_DIRS = ("contracts", "libs", "tools", "services", "infra")
"""What a revision's snapshot holds: the sources, and infra/ (the broker's pom.xml and logging
settings, which devstack finds by walking up from its own files)."""


def snapshot(rev: str | None, into: Path) -> tuple[str, str]:
    """Freeze the code under test: git revision ``rev``, or else a copy of the working tree
    as it is now (others may edit it while we run). Returns a PYTHONPATH that puts the copy
    ahead of the editable installs, and a digest of the copied sources."""
    if rev:
        into.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, *CODE_DIRS],
            check=True,
            capture_output=True,
        )
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    else:
        for src in (p for pattern in (*SOURCE_DIRS, "infra") for p in sorted(ROOT.glob(pattern))):
            shutil.copytree(
                src, into / src.relative_to(ROOT), ignore=shutil.ignore_patterns("__pycache__")
            )
    srcs = [p for pattern in SOURCE_DIRS for p in sorted(into.glob(pattern))]
    digest = hashlib.sha256()
    for file in sorted(f for src in srcs for f in src.rglob("*.py")):
        digest.update(str(file.relative_to(into)).encode() + b"\0" + file.read_bytes())
    return os.pathsep.join(str(p) for p in srcs), digest.hexdigest()[:12]
