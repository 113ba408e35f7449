"""Reading py-spy's collapsed stacks (``py-spy record --format raw``): where the time went."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def record_gil(raw: Path) -> list[str]:
    """The command line that runs a program under py-spy, sampling the thread that holds the
    GIL 250 times a second into ``raw`` (collapsed stacks): put it before the program's own."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return [spy, "record", "--gil", "--format", "raw", "--rate", "250", "--output", str(raw), "--"]


def print_heaviest(raw: Path, top: int = 40, within: str | None = None) -> None:
    """The heaviest functions in ``raw``: share of the samples with the function anywhere on
    the stack (inclusive), then with it on top (self time). A function's lines are counted
    together. With ``within``, only the samples with a frame containing that text count (the
    work being measured, not the set-up around it)."""
    totals: dict[str, int] = {}
    own: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if within is not None and within not in stack:
            continue
        n = int(count)
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        samples += n
        for frame in set(frames):
            totals[frame] = totals.get(frame, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
    scope = f" within {within}" if within else ""
    print(f"\n{samples} samples{scope}; heaviest functions (inclusive %), then self time:")
    for frame, n in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * n / samples:5.1f}%  {frame}")
    print()
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[: top // 2]:
        print(f"  {100 * n / samples:5.1f}%  {frame}")
    print(f"collapsed stacks: {raw}")
