"""Reading a CrawlSpec from a file, a dict or the command line, with errors a person can act on.

Every validation problem becomes one line naming the field and the value, e.g.
``max_pages: must be >= 1 (got -5)``, for the CLI to print and for the workflow to fail with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shardcrawl.contracts import CrawlSpec
from shardcrawl.errors import SpecError
from shardcrawl.proxy_urls import redact

__all__ = ["describe_errors", "load_spec_file", "parse_spec"]


def describe_errors(error: ValidationError) -> str:
    """One line per problem: ``field: message (got value)``, with proxy credentials hidden."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "spec"
        message = redact(problem["msg"].removeprefix("Value error, "))
        if problem["type"] == "extra_forbidden":
            message = "unknown field"
        if problem["type"] == "missing":
            lines.append(f"{field}: required field is missing")
            continue
        if not problem["loc"]:
            lines.append(message)  # a whole-spec rule names its fields itself
            continue
        value = problem.get("input")
        shown = redact(json.dumps(value, default=str))
        if len(shown) > 120:
            shown = shown[:117] + "..."
        lines.append(f"{field}: {message} (got {shown})")
    return "\n".join(lines)


def parse_spec(data: Any) -> CrawlSpec:
    """Validate a mapping into a CrawlSpec, raising SpecError that names each bad field."""
    if not isinstance(data, dict):
        raise SpecError(f"spec: must be a mapping of fields (got {type(data).__name__})")
    try:
        return CrawlSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError("invalid crawl spec:\n" + describe_errors(exc)) from None


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Read YAML or JSON (JSON is YAML) into a mapping; the caller validates and overrides it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"spec file {str(path)!r}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"spec file {str(path)!r} is not valid YAML or JSON: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"spec file {str(path)!r} must hold a mapping of fields")
    return data
