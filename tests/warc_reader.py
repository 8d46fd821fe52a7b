"""Reading a crawl's WARC files back with warcio, and the checks every crawl's archive passes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.timeutils import iso_date_to_timestamp

from shardcrawl.activities.cdxj import surt


def _records(data: bytes) -> list[Any]:
    """Every record of a WARC file, its payload read as stored (no decoding)."""
    out = []
    for record in ArchiveIterator(io.BytesIO(data)):
        record.stored = record.raw_stream.read()
        out.append(record)
    return out


def _header(record: Any, name: str) -> str | None:
    return record.rec_headers.get_header(name)


class Archive:
    """A crawl's WARC files, index and report, read from wherever it was stored."""

    def __init__(self, files: dict[str, bytes], index: bytes, report: dict[str, Any]) -> None:
        self.files = files
        self.index = index
        self.report = report
        self.records = {name: _records(data) for name, data in files.items()}

    def captures(self) -> dict[str, Any]:
        """Response and revisit records by URL (failing on a URL archived twice)."""
        found: dict[str, Any] = {}
        for records in self.records.values():
            for record in records:
                if record.rec_type in ("response", "revisit"):
                    url = _header(record, "WARC-Target-URI")
                    assert url not in found, f"{url} archived twice"
                    found[url] = record
        return found


def _local_archive(out: Path, crawl_id: str) -> Archive:
    folder = out / crawl_id / "warc"
    files = {p.name: p.read_bytes() for p in sorted(folder.glob("*.warc.gz"))}
    for path in folder.glob("*.warc.gz"):
        check = subprocess.run(
            [sys.executable, "-m", "warcio.cli", "check", str(path)],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads((out / crawl_id / "report.json").read_text())
    return Archive(files, (folder / "index.cdxj").read_bytes(), report)


def _check_structure(archive: Archive) -> None:
    """warcinfo first; each response followed by its request, linked, dated, with an IP."""
    total = 0
    for name, records in archive.records.items():
        total += len(records)
        assert records[0].rec_type == "warcinfo", name
        info = records[0].stored.decode()
        assert "software: shardcrawl/" in info and "robots: obey" in info
        assert _header(records[0], "WARC-Filename") == name
        for capture, request in zip(records[1::2], records[2::2], strict=True):
            assert capture.rec_type in ("response", "revisit")
            assert request.rec_type == "request"
            assert _header(request, "WARC-Concurrent-To") == _header(capture, "WARC-Record-ID")
            for header in ("WARC-Target-URI", "WARC-Date"):
                assert _header(request, header) == _header(capture, header)
            host = urlsplit(_header(capture, "WARC-Target-URI")).hostname
            assert _header(capture, "WARC-IP-Address") == host
            assert _header(capture, "WARC-Block-Digest").startswith("sha1:")
            assert request.http_headers.protocol == "GET"
            assert request.http_headers.statusline.endswith(" HTTP/1.1")
    assert archive.report["warc_files"] == len(archive.files)
    assert archive.report["warc_records"] == total
    assert archive.report["warc_bytes"] == sum(len(d) for d in archive.files.values())


def _check_index(archive: Archive) -> None:
    """Sorted, pywb's shape, one line per capture, each pointing at its record."""
    lines = archive.index.decode().splitlines()
    assert lines == sorted(lines)
    assert len(lines) == len(archive.captures())
    for line in lines:
        key, stamp, block = line.split(" ", 2)
        entry = json.loads(block)
        assert key == surt(entry["url"]) and len(stamp) == 14
        data = archive.files[entry["filename"]]
        start, length = int(entry["offset"]), int(entry["length"])
        (record,) = _records(data[start : start + length])
        assert _header(record, "WARC-Target-URI") == entry["url"]
        assert _header(record, "WARC-Payload-Digest") == entry.get("digest")
        assert iso_date_to_timestamp(_header(record, "WARC-Date")) == stamp
