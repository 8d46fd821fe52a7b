"""Workflow code must be deterministic: no module the workflows import may read a wall clock
or an unseeded random source, even as a default argument that a careless call would use. (The
sandbox would catch some of these at run time; this catches them before any crawl runs.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

CLOCKS = re.compile(
    r"\b(datetime\.(now|utcnow|today)|date\.today|time\.(time|monotonic|perf_counter)(_ns)?"
    r"|random\.(random|randint|choice|shuffle|uniform)|uuid\.uuid[14]|os\.urandom)\s*\("
)


def _modules_the_workflows_import() -> list[Path]:
    script = (
        "import json, sys, workflows.crawl, workflows.shard; "
        "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items() "
        "if n.split('.')[0] in ('shardcrawl', 'workflows') and getattr(m, '__file__', None))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return [Path(p) for p in json.loads(out.stdout)]


def test_no_workflow_module_reads_a_clock_or_randomness() -> None:
    modules = _modules_the_workflows_import()
    assert any(p.name == "blocks.py" for p in modules), "the import walk found too little"
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in modules
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if CLOCKS.search(line)
    ]
    assert not found, "workflow code must take now and randomness from workflow.*:\n" + "\n".join(
        found
    )
