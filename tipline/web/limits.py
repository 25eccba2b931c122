"""Request throttling (Flask-Limiter, stored in Redis so every web worker shares the counts).

Staff pages count per client (:func:`client_group`: an IPv4 address, or an IPv6 /64, which
one customer gets whole: counting its 2^64 addresses apart let one client try 20 logins a
minute from each). The anonymous pages never let an informant's address
reach Redis, not even as a hash anyone could reverse: :func:`anonymous_address_key` counts
under an HMAC whose key is random, lives in this process's memory only and is replaced every
:data:`WINDOW` (a counter outlives it by at most one window). The price: each web process counts
on its own, so a limit of N per hour is N per hour per process.
"""

from __future__ import annotations

import ipaddress
import threading
import time

from flask import request
from flask_limiter import Limiter

from keys import keyed_digest, random_bytes

WINDOW = 3600.0  # seconds: the longest limit on the anonymous pages is per hour

_lock = threading.Lock()
_keys: dict[int, bytes] = {}


def _window_key(now: float) -> bytes:
    window = int(now // WINDOW)
    with _lock:
        key = _keys.get(window)
        if key is None:
            _keys.clear()  # the previous window's key goes: its counters can no longer be linked
            key = _keys[window] = random_bytes(32)
        return key


def address_group(address: str) -> str:
    """What one client is: an IPv4 address, or an IPv6 /64 (one customer's whole network)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def client_group() -> str:
    """The limiter's key for staff pages: the client's address group."""
    return address_group(request.remote_addr or "")


limiter = Limiter(key_func=client_group, default_limits=[])


def anonymous_address_key() -> str:
    """The limiter's key for anonymous pages: no address, nothing a stored secret reverses."""
    group = address_group(request.remote_addr or "")
    return keyed_digest(_window_key(time.time()), "rate_limit", group)
