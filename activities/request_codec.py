"""Scrapy requests to frontier entries and back, so a request a spider yields on one worker is
rebuilt, callback and all, on whichever worker fetches it.

The same data Scrapy's own disk queues keep (``Request.to_dict`` / ``request_from_dict``):
callback and errback by method name on the spider, ``cb_kwargs``, ``meta``, headers, method,
body, ``dont_filter`` and the request class, but compact (only what differs from a plain GET
for ``parse``) and checked on the way out: what cannot travel (a lambda or another object's
method as callback, a ``meta`` or ``cb_kwargs`` value that is not JSON) raises
``RequestNotTransferable`` naming the spider, the request and the key, never a silent drop.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from scrapy import Request, Spider
from scrapy.utils.misc import load_object

from shardcrawl.models import RequestData, UrlTask

__all__ = ["RequestNotTransferable", "request_data", "scrapy_request"]

# Keys Scrapy's components and ours put in meta; they describe one download, so a spider
# that passes ``meta=response.meta`` on does not carry them to the next request.
_DOWNLOAD_META = frozenset(
    {"depth", "download_slot", "download_latency", "proxy", "_auth_proxy", "download_timeout"}
)


class RequestNotTransferable(ValueError):
    """A request a spider yielded cannot be rebuilt on another worker."""


def request_data(request: Request, spider: Spider) -> RequestData | None:
    """What ``request`` needs besides its URL and priority; None for a plain GET to ``parse``."""
    callback = _method_name(request, spider, "callback")
    errback = _method_name(request, spider, "errback")
    meta = {
        key: value
        for key, value in request.meta.items()
        if key not in _DOWNLOAD_META and not key.startswith(("_", "shardcrawl_"))
    }
    _check_json(request, spider, "meta", meta)
    _check_json(request, spider, "cb_kwargs", request.cb_kwargs)
    request_class = None
    if type(request) is not Request:
        request_class = f"{type(request).__module__}.{type(request).__qualname__}"
    headers = {
        key.decode("latin-1"): [value.decode("latin-1") for value in values]
        for key, values in request.headers.items()
    }
    data = RequestData(
        callback=None if callback == "parse" else callback,
        errback=errback,
        cb_kwargs=dict(request.cb_kwargs),
        meta=meta,
        method=request.method,
        headers=headers,
        body_b64=base64.b64encode(request.body).decode("ascii") if request.body else "",
        dont_filter=request.dont_filter,
        request_class=request_class,
    )
    return None if data == _PLAIN else data


_PLAIN = RequestData()


def scrapy_request(
    task: UrlTask,
    spider: Spider,
    *,
    meta: dict[str, Any],
    headers: dict[str, str] | None = None,
    errback: Any = None,
) -> Request:
    """The Scrapy request of a frontier entry, with our ``meta`` keys, extra ``headers`` (a
    conditional request's) and our ``errback`` (which calls the spider's). The shard has
    deduplicated it already, so Scrapy's filter is told to let it through."""
    data = task.request or _PLAIN
    request_class: type[Request] = Request
    if data.request_class:
        loaded = load_object(data.request_class)
        if not (isinstance(loaded, type) and issubclass(loaded, Request)):
            raise RequestNotTransferable(f"{data.request_class!r} is not a Scrapy Request class")
        request_class = loaded
    return request_class(
        task.url,
        callback=_method(spider, data.callback) if data.callback else None,
        errback=errback,
        method=data.method,
        headers={**data.headers, **(headers or {})},
        body=base64.b64decode(data.body_b64) if data.body_b64 else None,
        cb_kwargs=dict(data.cb_kwargs),
        meta={**data.meta, **meta},
        priority=task.priority,
        dont_filter=True,
    )


def _method_name(request: Request, spider: Spider, key: str) -> str | None:
    """The name of the spider method ``request.<key>`` is, checked the fast way (a bound
    method of this spider, found under its own name) rather than by scanning the spider."""
    function = getattr(request, key)
    if function is None or isinstance(function, str):
        return function
    name = getattr(getattr(function, "__func__", None), "__name__", None)
    bound = getattr(spider, name, None) if name else None
    if (
        getattr(function, "__self__", None) is spider
        and bound is not None
        and getattr(bound, "__func__", None) is function.__func__
    ):
        return name
    raise RequestNotTransferable(
        f"spider {spider.name!r}: request {request.method} {request.url}: {key} {function!r} "
        "is not a method of the spider, so no other worker can call it: make it one"
    )


def _method(spider: Spider, name: str) -> Any:
    method = getattr(spider, name, None)
    if not callable(method):
        raise RequestNotTransferable(f"spider {spider.name!r} has no method {name!r}")
    return method


def _check_json(request: Request, spider: Spider, key: str, values: dict[str, Any]) -> None:
    for name, value in values.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise RequestNotTransferable(
                f"spider {spider.name!r}: request {request.method} {request.url}: "
                f"{key}[{name!r}] is {type(value).__name__}, not JSON ({exc}), so it cannot "
                "travel to another worker"
            ) from None
