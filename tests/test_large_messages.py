"""Messages stay small however many links a page has: a page with thousands of long links makes
a batch result too large for one payload (it goes to the store in segments), and thousands of
links to another shard's host cross in several reports and enqueue messages. Nothing is lost
or fetched twice, and no payload in any history reaches 256 KB."""

from __future__ import annotations

import asyncio
from collections import Counter
from http.server import BaseHTTPRequestHandler

from shardcrawl.core import urls
from shardcrawl.models import shard_workflow_id
from shardcrawl.testing.history_audit import audit_crawl
from tests.helpers import read_items, start_crawl
from tests.thread_site import ThreadSite

LINKS_PER_HOST = 2500
PAD = "p" * 70


class LinkFarm(ThreadSite):
    """``/`` links LINKS_PER_HOST long URLs here and as many on the other farm; those pages
    link nowhere."""

    def __init__(self, ip: str) -> None:
        self.other = ""
        super().__init__(ip)

    def route(self, h: BaseHTTPRequestHandler) -> None:
        body = self.page(h.path).encode()
        h.send_response(200 if h.path != "/robots.txt" else 404)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def page(self, path: str) -> str:
        if path != "/":
            return "<title>leaf</title>"
        hrefs = [f"/leaf/{i}?pad={PAD}" for i in range(LINKS_PER_HOST)]
        hrefs += [f"{self.other}/leaf/{i}?pad={PAD}" for i in range(LINKS_PER_HOST)]
        return "<title>farm</title>" + "".join(f'<a href="{h}">x</a>' for h in hrefs)


async def test_large_link_lists_travel_in_small_payloads(client, workers, task_queue, tmp_path):
    home, away = LinkFarm("127.0.0.6"), LinkFarm("127.0.0.7")
    home.other = away.origin
    try:
        owners = lambda n: {urls.shard_of(o, n) for o in (home.origin, away.origin)}  # noqa: E731
        shards = next(n for n in range(2, 64) if len(owners(n)) == 2)
        out = tmp_path / "out"
        workers.start(2)
        spec = {
            "seeds": [f"{home.origin}/"],
            "allowed_domains": ["127.0.0.6", "127.0.0.7"],
            "max_depth": 1,
            "batch_size": 200,
            "concurrency_per_host": 8,
            "shards": shards,
            "output": str(out),
            "allow_private_networks": True,
        }
        handle = await start_crawl(client, spec, task_queue)
        report = await asyncio.wait_for(handle.result(), timeout=240)
    finally:
        home.close()
        away.close()

    fetched = Counter(home.requests) + Counter(f"away{p}" for p in away.requests)
    assert [p for p, n in fetched.items() if n > 1] == [], "a page was fetched twice"
    recorded = {item["url"] for item in read_items(out, handle.id)}
    assert len(recorded) == 1 + 2 * LINKS_PER_HOST
    assert report.pages_fetched == 1 + 2 * LINKS_PER_HOST

    runs = await audit_crawl(client, handle.id)
    assert max(r.largest_payload_bytes for r in runs) < 256 * 1024
    home_shard = shard_workflow_id(handle.id, urls.shard_of(home.origin, shards))
    history = await client.get_workflow_handle(home_shard).fetch_history()
    loads = [
        e
        for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == "load_segment"
    ]
    assert loads, "the home page's batch result was not moved to the store"
    crawl_history = await client.get_workflow_handle(handle.id).fetch_history()
    reports = [
        e
        for e in crawl_history.events
        if e.workflow_execution_signaled_event_attributes.signal_name == "shard_status"
    ]
    enqueues = [
        e
        for e in crawl_history.events
        if e.signal_external_workflow_execution_initiated_event_attributes.signal_name == "enqueue"
    ]
    # 2,500 forwarded links cross in at least 3 reports and 3 enqueue messages.
    assert len(reports) >= 3 and len(enqueues) >= 3
