"""Where a webhook may point. Checked when a subscription is created (the URL's shape, its
host against allowed_hosts, an IP literal against the private ranges) and again before each
attempt (the host's addresses as DNS answers them now: a name may resolve to a private
address later). Without allow_private_networks, Engram posts to public addresses only:
otherwise any key could make it reach the network it runs in (SSRF). The address checked is
resolved again by the connection itself; a DNS server that answers differently within that
moment (rebinding) is outside what this check covers, which is why allowed_hosts exists."""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from serve.config import WebhooksConfig
from serve.errors import bad_request

MAX_URL_BYTES = 2048


def _private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    return not ip.is_global or ip.is_multicast


def check_url(url: str, cfg: WebhooksConfig) -> None:
    """A 400 naming `url` for a URL no subscription may have."""
    if len(url.encode()) > MAX_URL_BYTES:
        raise bad_request("url", f"at most {MAX_URL_BYTES} bytes")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise bad_request("url", "no spaces or control characters: percent-encode them")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise bad_request("url", f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request("url", "an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise bad_request("url", "no credentials in the URL: verify deliveries by their signature")
    if port == 0:
        raise bad_request("url", "port 0 is not a port to deliver to")
    host = parts.hostname
    if cfg.allowed_hosts is not None and host not in cfg.allowed_hosts:
        raise bad_request("url", f"host {host!r} is not one this Engram delivers to "
                                 f"(webhooks.allowed_hosts: {', '.join(cfg.allowed_hosts) or 'none'})")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return
    if not cfg.allow_private_networks and _private(str(literal)):
        raise bad_request("url", f"{host} is a private, loopback or link-local address; an operator "
                                 "allows those with webhooks.allow_private_networks")


async def blocked(url: str, cfg: WebhooksConfig) -> str | None:
    """Why an attempt to this URL must not go out now, or None."""
    host = urlsplit(url).hostname or ""
    if cfg.allowed_hosts is not None and host not in cfg.allowed_hosts:
        return f"host {host} is no longer in webhooks.allowed_hosts"
    if cfg.allow_private_networks:
        return None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    private = sorted({str(info[4][0]) for info in infos if _private(str(info[4][0]))})
    if private:
        return f"{host} resolves to {', '.join(private)}: not a public address"
    return None
