"""Proxy URLs: what a spec may hold, how credentials reach a worker, and redaction.

A spec travels through workflow history, which the Temporal UI shows to anyone who can list
workflows, so it never holds a proxy's password. A proxy URL names its credentials as
environment variables (``http://${PROXY_USER}:${PROXY_PASS}@gw.example:8080``) and each worker
fills them in from its own environment just before the request. Anything printed (logs, errors,
reports, status) goes through ``redact`` as well, in case a resolved URL ever reaches it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

__all__ = ["PLACEHOLDER", "MissingCredential", "check_proxy_url", "redact", "resolve"]

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Up to the last "@" before the host: a password may hold an "@" of its own.
_USERINFO = re.compile(r"(?<=://)[^/\s]*@")


class MissingCredential(LookupError):
    """A proxy URL names an environment variable that the worker does not have."""


def redact(text: str, *, keep_placeholders: bool = True) -> str:
    """Any ``user:pass@`` of a URL in ``text`` becomes ``***@``, so that nothing printed echoes
    credentials; ``${VAR}`` placeholders stay unless ``keep_placeholders`` is false (they are
    names, not secrets)."""

    def hide(match: re.Match[str]) -> str:
        userinfo = match.group(0)[:-1]
        return match.group(0) if keep_placeholders and _only_placeholders(userinfo) else "***@"

    return _USERINFO.sub(hide, text)


def _only_placeholders(userinfo: str) -> bool:
    return all(not part or PLACEHOLDER.fullmatch(part) for part in userinfo.split(":", 1))


def check_proxy_url(url: str) -> str:
    """The URL if it is an http(s) proxy with host and port whose credentials, if any, are
    ``${VAR}`` placeholders; otherwise ValueError, with the URL redacted."""
    shown = redact(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"proxy {shown!r} must be an http:// or https:// URL")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ValueError(f"proxy {shown!r} needs a host and a port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"proxy {shown!r} must be scheme://host:port, no path or query")
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo and not _only_placeholders(userinfo):
        raise ValueError(
            f"proxy {shown!r} holds credentials, which workflow history would show: write "
            "them as ${VARIABLE} names (http://${PROXY_USER}:${PROXY_PASS}@host:port) and set "
            "those variables on every worker"
        )
    return url.rstrip("/")


def resolve(url: str, env: Mapping[str, str] | None = None) -> str:
    """The URL with its ``${VAR}`` credentials filled from ``env`` (the process environment),
    percent-encoded so that any character in a password survives."""
    env = os.environ if env is None else env

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise MissingCredential(
                f"proxy {url!r} needs the environment variable {name}, which this worker "
                "does not have"
            )
        return quote(env[name], safe="")

    return PLACEHOLDER.sub(fill, url)
