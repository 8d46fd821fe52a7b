"""This checkout's root, first on sys.path: the benchmarks import its shardcrawl, not the venv's."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
