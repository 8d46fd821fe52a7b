"""Workflow code must be deterministic: no module the workflows import may read a wall clock
or an unseeded random source, even as a default argument that a careless call would use. (The
sandbox would catch some of these at run time; this catches them before any crawl runs.)"""

from __future__ import annotations

import ast
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
        "import json, sys, shardcrawl.workflows.crawl, shardcrawl.workflows.shard; "
        "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items() "
        "if n.split('.')[0] == 'shardcrawl' and getattr(m, '__file__', None))))"
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


class _SetIterations(ast.NodeVisitor):
    """Loops, comprehensions and ``list``/``tuple``/``next(iter())`` over names bound to a set
    (``x = set()``, ``{...}``, a set comprehension, or ``x: set[...]``), by name or as
    ``self.x``. A set's order is its elements' hashes, which for strings change with every
    process and for objects with every allocation: a workflow that issues commands in that
    order does not replay. ``sorted(...)`` and membership tests are fine."""

    def __init__(self) -> None:
        self.sets: set[str] = set()
        self.found: list[int] = []

    @staticmethod
    def _key(node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return f"{node.value.id}.{node.attr}"
        return None

    @staticmethod
    def _is_set(value: ast.expr | None, annotation: ast.expr | None = None) -> bool:
        if annotation is not None:
            head = annotation.value if isinstance(annotation, ast.Subscript) else annotation
            return isinstance(head, ast.Name) and head.id in ("set", "frozenset")
        return isinstance(value, ast.Set | ast.SetComp) or (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id in ("set", "frozenset")
        )

    def bind(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.AnnAssign) and self._is_set(node.value, node.annotation):
                key = self._key(node.target)
            elif isinstance(node, ast.Assign) and self._is_set(node.value):
                key = self._key(node.targets[0])
            else:
                continue
            if key:
                self.sets.add(key)

    def _check(self, iterable: ast.expr) -> None:
        if self._key(iterable) in self.sets:
            self.found.append(iterable.lineno)

    def visit_For(self, node: ast.For) -> None:
        self._check(node.iter)
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        self._check(node.iter)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id in ("list", "tuple", "iter"):
            for arg in node.args:
                self._check(arg)
        self.generic_visit(node)


def set_iterations(source: str) -> list[int]:
    """Lines of ``source`` that iterate a set (see ``_SetIterations``)."""
    tree = ast.parse(source)
    visitor = _SetIterations()
    visitor.bind(tree)
    visitor.visit(tree)
    return visitor.found


def test_no_workflow_module_iterates_a_set() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _modules_the_workflows_import()
        for line in set_iterations(path.read_text())
    ]
    assert not found, "iterate sorted(...) or a dict, not a set:\n" + "\n".join(found)


def test_the_set_check_finds_what_the_cancel_order_defect_was() -> None:
    """The shard once cut off its in-flight batches in the order of a set of tasks."""
    defect = (
        "class Shard:\n"
        "    def __init__(self):\n"
        "        self._batches: set[asyncio.Task[None]] = set()\n"
        "    async def land(self):\n"
        "        for task in list(self._batches):\n"
        "            task.cancel()\n"
        "        seen = {1, 2}\n"
        "        names = [n for n in seen]\n"
        "        ok = sorted(seen), 1 in self._batches\n"
    )
    assert set_iterations(defect) == [5, 8]
