"""Leases in Redis: one holder at a time for a piece of work, taken over at once from a holder
that died on this machine.

A lease is a Redis lock whose token names its holder (``host|pid|random``). A holder killed
while holding it (SIGKILL, out of memory) would otherwise hold the work up until the lease
expires; a holder on this machine whose process is gone is known dead and its lease is
dropped at once. A holder on another machine is presumed alive: its lease expires.
"""

from __future__ import annotations

import logging
import os
import socket

from redis import Redis
from redis.exceptions import LockError
from redis.lock import Lock

from keys import new_token

log = logging.getLogger(__name__)

# Deletes the lease only if it still holds the value read (a dead holder's), atomically.
_DROP_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


def holder_is_dead(value: bytes | str) -> bool:
    """True for a lease taken by a process of this machine that is gone."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    host, _, rest = text.partition("|")
    pid = rest.partition("|")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, and someone else's
        return False
    return False


def take_lease(redis: Redis, key: str, seconds: float) -> Lock | None:
    """The lease ``key`` for ``seconds``, or None while another live holder has it."""
    lease: Lock = redis.lock(key, timeout=seconds, blocking=False)
    token = f"{socket.gethostname()}|{os.getpid()}|{new_token(16)}"
    if lease.acquire(token=token):
        return lease
    held = redis.get(key)
    if held is not None and not holder_is_dead(held):
        return None
    if held is not None:
        redis.eval(_DROP_IF, 1, key, held)
    return lease if lease.acquire(token=token) else None


def release(lease: Lock) -> None:
    """Give the lease back; one that expired meanwhile is simply gone."""
    try:
        lease.release()
    except LockError:
        pass
