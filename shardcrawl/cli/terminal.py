"""What every command shares to speak: the two consoles, the exit codes, the not-completed end."""

from __future__ import annotations

from rich.console import Console

EXIT_OK, EXIT_NOT_COMPLETED, EXIT_ERROR = 0, 1, 2

console = Console()
err_console = Console(stderr=True)


class CrawlNotCompleted(Exception):
    """A crawl ended without completing; the CLI exits 1."""
