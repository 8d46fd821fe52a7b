"""``python worker.py``: one shardcrawl worker, the same as ``shardcrawl worker`` (flags in
``--help``). The worker itself is ``shardcrawl.temporal.worker``, installed with the package."""

from shardcrawl.temporal.connection import exit_now
from shardcrawl.temporal.worker import main

if __name__ == "__main__":
    exit_now(main())
