"""A flame graph (SVG) from collapsed stacks (``frame;frame;frame count`` per line, root first),
as py-spy's ``raw`` format and ``load_cpu.collapse_jfr`` write them. Width is the share of
samples; hover a box for its name and share. Small on purpose: no zoom, no search."""

from __future__ import annotations

import html
import zlib
from pathlib import Path

WIDTH, ROW, MIN_PX = 1600, 16, 0.8


class _Node:
    __slots__ = ("children", "count")

    def __init__(self) -> None:
        self.count = 0
        self.children: dict[str, _Node] = {}


def _tree(raw: Path) -> _Node:
    root = _Node()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        node = root
        node.count += n
        for frame in stack.split(";"):
            node = node.children.setdefault(frame, _Node())
            node.count += n
    return root


def _colour(name: str) -> str:
    h = zlib.crc32(name.encode())
    return f"rgb({205 + h % 50},{80 + (h >> 8) % 120},{40 + (h >> 16) % 50})"


def write_svg(raw: Path, svg: Path, title: str) -> None:
    """Draw ``raw`` (collapsed stacks) as an icicle-style flame graph into ``svg``."""
    root = _tree(raw)
    total = max(root.count, 1)
    boxes: list[str] = []
    depth_max = 0

    def draw(node: _Node, x: float, depth: int) -> None:
        nonlocal depth_max
        for name, child in sorted(node.children.items()):
            width = WIDTH * child.count / total
            if width >= MIN_PX:
                depth_max = max(depth_max, depth)
                y = 24 + depth * ROW
                share = 100 * child.count / total
                label = html.escape(name)
                text = label[: int(width / 7)] if width > 21 else ""
                boxes.append(
                    f"<g><title>{label} ({share:.1f}%, {child.count} samples)</title>"
                    f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{ROW - 1}" '
                    f'fill="{_colour(name)}"/><text x="{x + 2:.1f}" y="{y + 11}">{text}</text></g>'
                )
                draw(child, x, depth + 1)
            x += width

    draw(root, 0.0, 0)
    height = 24 + (depth_max + 1) * ROW + 8
    svg.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'font-family="monospace" font-size="10">'
        f'<text x="4" y="14" font-size="12">{html.escape(title)} — {root.count} samples, '
        f"root at the top</text>{''.join(boxes)}</svg>\n"
    )
