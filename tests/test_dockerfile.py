"""The Dockerfile, parsed without Docker: it installs and runs what pyproject.toml declares."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from typing import Any

import pytest

from shardcrawl.cli.main import build_parser
from tests.helpers import DOCKERFILE, ROOT

__all__: list[str] = []

PYPROJECT = ROOT / "pyproject.toml"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def _instruction_argv(rest: str) -> list[str]:
    """Exec (JSON) form or shell-words form, flags such as --chown dropped."""
    words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    return [word for word in words if not word.startswith("--")]


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text())


def test_dockerfile_runs_the_worker_console_script(pyproject: dict[str, Any]) -> None:
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert not [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    cmds = [rest for keyword, rest in instructions if keyword == "CMD"]
    assert cmds and cmds[-1].startswith("["), "use the exec form so SIGTERM reaches the worker"
    argv = json.loads(cmds[-1])
    assert argv == ["shardcrawl", "worker"]
    assert argv[0] in pyproject["project"]["scripts"]
    assert build_parser().parse_args(argv[1:]).command == "worker"


def test_dockerfile_installs_the_project_as_non_root() -> None:
    instructions = _dockerfile_instructions()
    runs = [rest for keyword, rest in instructions if keyword == "RUN"]
    assert any(re.search(r"\bpip install --no-cache-dir \.(\s|$)", run) for run in runs)
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_copies_existing_paths_covering_the_package(pyproject: dict[str, Any]) -> None:
    copied: set[str] = set()
    for keyword, rest in _dockerfile_instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        assert "--from" not in rest, "a multi-stage COPY needs its own check"
        *sources, _destination = _instruction_argv(rest)
        for source in sources:
            assert (ROOT / source).exists(), f"{keyword} {source}: no such path in the repo"
            copied.add(source.rstrip("/"))

    setuptools = pyproject["tool"]["setuptools"]
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= {package.split(".")[0] for package in setuptools.get("packages", [])}
    needed |= {module + ".py" for module in setuptools.get("py-modules", [])}
    assert needed <= copied, f"`pip install .` needs these copied too: {sorted(needed - copied)}"
