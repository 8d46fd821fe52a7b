"""Reading a crawl spec file (YAML or JSON) into a mapping, for the CLI to override and
validate (``shardcrawl.models.validation.parse_spec``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shardcrawl.core.errors import SpecError

__all__ = ["load_spec_file"]


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
