"""How a share is written, the same in the terminal and in report.html."""

from __future__ import annotations

__all__ = ["format_rate"]


def format_rate(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"
