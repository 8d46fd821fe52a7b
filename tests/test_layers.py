"""The package's layers, as docs/architecture.md draws them: each layer imports only the
layers below it, so workflow code cannot reach I/O, and nothing the product runs imports the
testing helpers. Read from the source (every import statement, in functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "shardcrawl"

# What each layer (shardcrawl's sub-package) may import of shardcrawl, besides itself.
MAY_IMPORT: dict[str, set[str]] = {
    "core": set(),
    "models": {"core"},
    "policy": {"core", "models"},
    "store": {"core"},
    "workflows": {"core", "models", "policy"},
    "spiders": set(),
    "activities": {"core", "models", "policy", "store"},
    "temporal": {"core", "models", "policy", "store", "workflows", "activities"},
    "cli": {"core", "models", "policy", "store", "temporal", "activities"},
    "testing": {"core", "models", "policy", "store", "temporal", "workflows", "activities", "cli"},
}
# shardcrawl/__main__.py is `python -m shardcrawl`: the CLI.
TOP_LEVEL_MAY_IMPORT = {"cli"}


def _layer_of(path: Path, package: Path = PACKAGE) -> str | None:
    parts = path.relative_to(package).parts
    return parts[0] if len(parts) > 1 else None


def _imported(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, module) for every import of shardcrawl in a file, relative ones resolved."""
    here = ["shardcrawl", *path.relative_to(package).parts[:-1]]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1] if node.level else [])
            module = ".".join(part for part in (base, node.module) if part)
            if module == "shardcrawl" or not node.module:
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return [(line, name) for line, name in found if name.split(".")[0] == "shardcrawl"]


def _modules() -> list[Path]:
    # rglob does not follow the links to workflows/, activities/ and spiders/: walk them too.
    roots = [PACKAGE, *(p for p in PACKAGE.iterdir() if p.is_symlink())]
    return sorted({p for root in roots for p in root.rglob("*.py")})


def _crossings(path: Path, package: Path = PACKAGE) -> list[str]:
    layer = _layer_of(path, package)
    allowed = TOP_LEVEL_MAY_IMPORT if layer is None else MAY_IMPORT[layer] | {layer}
    out = []
    for line, name in _imported(path, package):
        parts = name.split(".")
        target = parts[1] if len(parts) > 1 else None
        if target not in allowed:
            out.append(f"shardcrawl/{path.relative_to(package)}:{line}: {layer} imports {name}")
    return out


def test_every_layer_has_modules() -> None:
    layers = {_layer_of(p) for p in _modules()}
    assert set(MAY_IMPORT) <= layers, f"layers without a module: {set(MAY_IMPORT) - layers}"


def test_no_module_imports_across_a_forbidden_line() -> None:
    crossings = [c for path in _modules() for c in _crossings(path)]
    assert not crossings, "imports across a layer's line:\n" + "\n".join(crossings)


@pytest.mark.parametrize(
    ("layer", "source", "forbidden"),
    [
        ("workflows", "from shardcrawl.store import open_store\n", True),
        ("policy", "import shardcrawl.activities.batch\n", True),
        ("core", "from shardcrawl import models\n", True),
        ("cli", "from shardcrawl.testing.sites import graph\n", True),
        ("workflows", "from ..store import open_store\n", True),
        ("policy", "from . import frontier\n", False),
        ("workflows", "from shardcrawl.policy.frontier import Frontier\n", False),
    ],
)
def test_the_check_sees_a_crossing(
    tmp_path: Path, layer: str, source: str, forbidden: bool
) -> None:
    """The check itself: a module written into a copy of a layer is caught, or not."""
    module = tmp_path / "shardcrawl" / layer / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text(source)
    assert bool(_crossings(module, tmp_path / "shardcrawl")) is forbidden


def test_what_installs_is_under_the_shardcrawl_name() -> None:
    """No generic top-level name (workflows, activities, spiders, worker) gets installed: the
    three folders are shardcrawl's sub-packages through links, and worker.py is no module."""
    import tomllib

    setup = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py-modules" not in setup and "package-dir" not in setup
    assert all(name.split(".")[0] == "shardcrawl" for name in setup["packages"])
    for folder in ("workflows", "activities", "spiders"):
        link = PACKAGE / folder
        assert link.is_symlink() and link.resolve() == (PACKAGE.parent / folder).resolve()
        assert f"shardcrawl.{folder}" in setup["packages"]
