"""CDXJ index lines as pywb reads them, and the streaming merge of sorted index parts.

A line is ``SURT TIMESTAMP JSON``: the URL's sort key, the capture's 14-digit UTC time, and a
JSON block with ``url``, ``mime``, ``status``, ``digest``, ``length``, ``offset`` and
``filename``. The SURT here follows the common defaults (``surt.surt``, which pywb uses and
which is AGPL, so it is not a dependency): host lowercased, a leading ``www``/``wwwN``
dropped, labels reversed and joined by commas (IPv4 addresses too), a port other than the
scheme's default kept, then ``)`` and the path and query lowercased, query arguments sorted.

Every batch writes its own part, sorted; the crawl's index is their merge (``merge_sorted``),
which holds one line per part at a time, never the whole crawl.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from urllib.parse import urlsplit

__all__ = ["cdxj_line", "merge_sorted", "surt", "timestamp14"]

_WWW = re.compile(r"^www\d*\.")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def surt(url: str) -> str:
    """The sort-friendly key of a URL: ``http://www.Example.com:8080/A?b=1&a=2`` becomes
    ``com,example:8080)/a?a=2&b=1``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    host = _WWW.sub("", host)
    key = ",".join(reversed(host.split(".")))
    port = parts.port
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        key += f":{port}"
    path = (parts.path or "/").lower()
    query = "&".join(sorted(parts.query.lower().split("&"))) if parts.query else ""
    return f"{key}){path}" + (f"?{query}" if query else "")


def timestamp14(when: datetime) -> str:
    """A capture time as CDX writes it: ``YYYYMMDDhhmmss``, UTC."""
    return when.strftime("%Y%m%d%H%M%S")


def cdxj_line(
    *,
    url: str,
    when: datetime,
    mime: str,
    status: int | None,
    digest: str | None,
    length: int,
    offset: int,
    filename: str,
) -> str:
    """One index line, newline included. A revisit's ``mime`` is ``warc/revisit``."""
    block: dict[str, str] = {"url": url, "mime": mime or "unk"}
    if status is not None:
        block["status"] = str(status)
    if digest:
        block["digest"] = digest
    block.update(length=str(length), offset=str(offset), filename=filename)
    return f"{surt(url)} {timestamp14(when)} {json.dumps(block, ensure_ascii=False)}\n"


def merge_sorted(parts: Iterable[Iterable[str]]) -> Iterator[str]:
    """The lines of sorted parts, in one sorted stream (lines compare as strings, which is
    the order pywb's binary search expects)."""
    return heapq.merge(*parts)
