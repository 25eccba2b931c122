"""Downloading an attachment URL without becoming an SSRF proxy.

- Only hosts on the allow-list (``Config.media_hosts``: exact names or ``*.`` suffixes, HTTPS
  only); in simulator mode the simulator's own scheme, host and port are added, exactly.
- The name is resolved first and every address checked: loopback, private, link-local,
  reserved and multicast addresses are refused before any connection (the simulator's exact
  entry excepted). The connection then goes to the checked address (no second lookup that a
  rebinding DNS could answer differently); TLS still verifies the certificate for the name.
- Redirects are not followed blindly: each ``Location`` is checked like the first URL.
- A timeout for the whole download and a byte cap, checked while streaming.
- Failures that may pass (the name does not resolve, no connection, a timeout, a 5xx or 429)
  are :class:`TransientError`: the media job is retried with back-off, and a DNS failure does
  not lose the file. Everything else is a final :class:`Refused`.
- In simulator mode, the simulator stands in for Zalo's CDNs at
  ``<simulator>/_sim/cdn/<host>/…``; ``<host>`` must be on the allow-list like a real one.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from tipline.config import Config
from tipline.media.errors import Refused
from tipline.models import Refusal

MAX_REDIRECTS = 3


class TransientError(Exception):
    """The host did not answer well this time (DNS, connection, timeout, 5xx); worth a retry."""


SIM_CDN = "/_sim/cdn/"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str  # the checked IP address the connection goes to


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def simulator_origin(config: Config) -> tuple[str, str, int] | None:
    """(scheme, host, port) of the simulator's media endpoint, in simulator mode only."""
    if not config.simulator:
        return None
    parts = urlsplit(config.zalo_api_base)
    if not parts.hostname or parts.scheme not in ("http", "https"):
        return None
    return parts.scheme, parts.hostname.lower(), parts.port or _default_port(parts.scheme)


def _listed(host: str, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _resolve(host: str, port: int) -> list[str]:
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as exc:
        raise Refused(Refusal.BAD_URL) from exc
    except OSError as exc:  # socket.gaierror: no answer from DNS now, perhaps later
        raise TransientError("the name does not resolve") from exc
    return sorted({str(info[4][0]) for info in infos})


def check_url(url: str, config: Config) -> Target:
    """The address to connect to for ``url``, or :class:`Refused` (no connection is made)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(Refusal.BAD_URL) from exc
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if scheme not in ("http", "https") or not host or parts.username or parts.password:
        raise Refused(Refusal.BAD_URL)
    port = port or _default_port(scheme)
    simulator = simulator_origin(config)
    exact_simulator = simulator is not None and simulator == (scheme, host, port)
    if exact_simulator:
        if parts.path.startswith(SIM_CDN):  # a simulated CDN host: the list applies
            cdn_host = parts.path[len(SIM_CDN):].split("/", 1)[0].lower()
            if not _listed(cdn_host, config.media_hosts):
                raise Refused(Refusal.HOST_NOT_ALLOWED, cdn_host)
    elif scheme != "https" or port != 443 or not _listed(host, config.media_hosts):
        raise Refused(Refusal.HOST_NOT_ALLOWED, host)
    addresses = _resolve(host, port)
    if not addresses:
        raise TransientError("the name does not resolve")
    if not exact_simulator and not all(_public(a) for a in addresses):
        raise Refused(Refusal.PRIVATE_ADDRESS, host)
    return Target(scheme, host, port, addresses[0])


def _request_url(target: Target, url: str) -> str:
    parts = urlsplit(url)
    address = f"[{target.address}]" if ":" in target.address else target.address
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return f"{target.scheme}://{address}:{target.port}{path}"


def download(url: str, config: Config) -> bytes:
    """The bytes at ``url``; :class:`Refused` or :class:`TransientError` otherwise."""
    deadline = time.monotonic() + config.media_timeout_seconds
    cap = config.media_max_bytes
    timeout = httpx.Timeout(config.media_timeout_seconds, connect=10.0)
    with httpx.Client(follow_redirects=False, timeout=timeout, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target = check_url(url, config)
            default = target.port == _default_port(target.scheme)
            host_header = target.host if default else f"{target.host}:{target.port}"
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            try:
                with client.stream(
                    "GET",
                    _request_url(target, url),
                    headers={"Host": host_header, "Accept-Encoding": "identity"},
                    extensions=extensions,
                ) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise Refused(Refusal.UNAVAILABLE, "redirect without a location")
                        url = urljoin(url, location)
                        continue
                    if response.status_code >= 500 or response.status_code == 429:
                        raise TransientError(f"HTTP {response.status_code}")
                    if response.status_code != 200:
                        raise Refused(Refusal.UNAVAILABLE, f"HTTP {response.status_code}")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > cap:
                        raise Refused(Refusal.TOO_LARGE)
                    chunks: list[bytes] = []
                    total = 0
                    for chunk in response.iter_raw():
                        total += len(chunk)
                        if total > cap:
                            raise Refused(Refusal.TOO_LARGE)
                        if time.monotonic() > deadline:
                            raise TransientError("timeout")
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.TimeoutException as exc:
                raise TransientError("timeout") from exc
            except httpx.HTTPError as exc:
                raise TransientError(type(exc).__name__) from exc
    raise Refused(Refusal.TOO_MANY_REDIRECTS)
