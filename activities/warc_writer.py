"""One batch's WARC/1.1 file and its CDXJ index part, built in memory with warcio.

What a response record holds: the status line, the headers and the payload as they came off
the wire, before content decoding (a gzip page stays gzip, with its ``Content-Encoding``), so
replay serves exactly what the site sent. Twisted has already undone the transfer encoding
(chunks) and keeps the connection's own headers (``Transfer-Encoding``, ``Connection``) to
itself, so those are not in the record, and ``Content-Length`` is the length Twisted was told.
A body cut at ``max_response_bytes`` keeps what came, up to that size, marked
``WARC-Truncated: length``.

Each record is its own gzip member, compressed here at level 6 (warcio's own wrapper uses 9:
on HTML text 9 costs about a tenth more CPU for the same size). Every file opens with a
``warcinfo`` record; each capture is a response (or revisit) record followed by its request
record, linked by ``WARC-Concurrent-To``.
"""

from __future__ import annotations

import http
import io
import socket
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.utils import Digester
from warcio.warcwriter import WARCWriter

from shardcrawl.activities.cdxj import cdxj_line

__all__ = [
    "NOT_MODIFIED_PROFILE",
    "IDENTICAL_PROFILE",
    "WarcFile",
    "WireExchange",
    "payload_digest",
]

NOT_MODIFIED_PROFILE = "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
IDENTICAL_PROFILE = "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest"
_GZIP_LEVEL = 6
_SOFTWARE = f"shardcrawl/{version('shardcrawl')} warcio/{version('warcio')}"


@dataclass
class WireExchange:
    """A request and its response as they went over the wire, for the archive."""

    url: str
    method: str
    request_headers: list[tuple[str, str]]
    request_body: bytes
    status: int
    protocol: str
    headers: list[tuple[str, str]]
    body: bytes
    ip_address: str | None = None
    truncated: bool = False
    content_type: str | None = None

    @property
    def request_target(self) -> str:
        """The request line's target: the path and query, as Scrapy sent it."""
        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def payload_digest(body: bytes) -> str:
    """The WARC payload digest of a body: sha1, base32, as warcio writes it."""
    digester = Digester("sha1")
    digester.update(body)
    return str(digester)


def _warc_date(when: datetime) -> str:
    """A WARC-Date to the millisecond, the same text as the page record's ``fetched_at``."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WarcFile:
    """The records of one batch, gzip member by member, with an index line per capture."""

    def __init__(self, *, filename: str, crawl_id: str, info: dict[str, str]) -> None:
        self.filename = filename
        self._out = io.BytesIO()
        self._builder = WARCWriter(None, gzip=False, warc_version="1.1")
        self._index: list[str] = []
        self.records = 0
        fields = {
            "software": _SOFTWARE,
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
            "hostname": socket.gethostname(),
            "isPartOf": crawl_id,
            **info,
        }
        self._write(self._builder.create_warcinfo_record(filename, fields))

    def response(self, exchange: WireExchange, when: datetime) -> str:
        """A response record and its request; returns the payload digest."""
        extra = {"WARC-Truncated": "length"} if exchange.truncated else {}
        record = self._builder.create_warc_record(
            exchange.url,
            "response",
            payload=io.BytesIO(exchange.body),
            length=len(exchange.body),
            http_headers=self._response_headers(exchange),
            warc_headers_dict=self._warc_headers(exchange, when, extra),
        )
        digest = record.rec_headers.get_header("WARC-Payload-Digest")
        self._capture(exchange, when, record, mime=exchange.content_type, digest=digest)
        return str(digest)

    def revisit(
        self,
        exchange: WireExchange,
        when: datetime,
        *,
        profile: str,
        refers_to_uri: str,
        refers_to_date: str,
        digest: str | None,
    ) -> None:
        """A revisit record (the response's headers, no payload) pointing at the earlier
        capture, and its request."""
        extra = {
            "WARC-Profile": profile,
            "WARC-Refers-To-Target-URI": refers_to_uri,
            "WARC-Refers-To-Date": refers_to_date,
        }
        if digest:
            extra["WARC-Payload-Digest"] = digest
        record = self._builder.create_warc_record(
            exchange.url,
            "revisit",
            http_headers=self._response_headers(exchange),
            warc_headers_dict=self._warc_headers(exchange, when, extra),
        )
        self._capture(exchange, when, record, mime="warc/revisit", digest=digest)

    def finish(self) -> tuple[bytes, bytes]:
        """The file's bytes, and its index part: a first line with the file's record count
        and size, then its CDXJ lines, sorted."""
        data = self._out.getvalue()
        head = f'{{"records": {self.records}, "bytes": {len(data)}}}\n'
        return data, (head + "".join(sorted(self._index))).encode("utf-8")

    def _capture(
        self,
        exchange: WireExchange,
        when: datetime,
        record: Any,
        *,
        mime: str | None,
        digest: str | None,
    ) -> None:
        offset, length = self._write(record)
        self._index.append(
            cdxj_line(
                url=exchange.url,
                when=when,
                mime=mime or "unk",
                status=exchange.status,
                digest=digest,
                length=length,
                offset=offset,
                filename=self.filename,
            )
        )
        request = self._builder.create_warc_record(
            exchange.url,
            "request",
            payload=io.BytesIO(exchange.request_body),
            length=len(exchange.request_body),
            http_headers=StatusAndHeaders(
                # Twisted's client sends HTTP/1.1 whatever the server answers with.
                f"{exchange.method} {exchange.request_target} HTTP/1.1",
                exchange.request_headers,
                is_http_request=True,
            ),
            warc_headers_dict={
                "WARC-Date": _warc_date(when),
                "WARC-Concurrent-To": record.rec_headers.get_header("WARC-Record-ID"),
            },
        )
        self._write(request)

    @staticmethod
    def _response_headers(exchange: WireExchange) -> StatusAndHeaders:
        try:
            reason = http.HTTPStatus(exchange.status).phrase
        except ValueError:
            reason = ""
        return StatusAndHeaders(
            f"{exchange.status} {reason}".strip(),
            list(exchange.headers),
            protocol=exchange.protocol,
        )

    @staticmethod
    def _warc_headers(
        exchange: WireExchange, when: datetime, extra: dict[str, str]
    ) -> dict[str, str]:
        headers = {"WARC-Date": _warc_date(when), **extra}
        if exchange.ip_address:
            headers["WARC-IP-Address"] = exchange.ip_address
        return headers

    def _write(self, record: Any) -> tuple[int, int]:
        """Append one record as its own gzip member; its offset and length in the file."""
        raw = io.BytesIO()
        self._builder.out = raw
        self._builder.write_record(record)
        compressor = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS + 16)
        member = compressor.compress(raw.getvalue()) + compressor.flush()
        offset = self._out.tell()
        self._out.write(member)
        self.records += 1
        return offset, len(member)
