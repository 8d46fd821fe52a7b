"""Validating a CrawlSpec from a mapping, with errors a person can act on.

Every validation problem becomes one line naming the field and the value, e.g.
``max_pages: must be >= 1 (got -5)``, for the CLI to print and for the workflow to fail with.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from shardcrawl.core.errors import SpecError
from shardcrawl.core.proxy_urls import redact
from shardcrawl.models import CrawlSpec

__all__ = ["describe_errors", "parse_spec"]


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
