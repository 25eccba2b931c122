"""Delays that double with each failure, instead of locks.

A lock after N failures hands the lock to whoever can fail N times: anyone who knows a
username (or a receipt code) keeps its owner out, and tries during the lock made it longer.
Here failures are counted per *scope* (an account from one address, an address across
accounts, …) and each scope asks its next try to wait ``first × 2^(failures − free)``
seconds after its latest failure, at most ``longest``. A try during the wait is refused
before any password is checked and counts for nothing: it neither costs an Argon2id run nor
makes the wait longer. Nothing is ever locked: the wait ends, and which scopes a caller
checks decides whom the failures slow down (triage.throttle: not the officer elsewhere).

Counts live in Redis (shared by every web process) under a keyed digest of the scope, and are
forgotten ``memory`` seconds after a scope's latest failure. The clock is the runtime's
(``Runtime.clock``), so tests move time instead of waiting for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis import Redis

from keys import keyed_digest

PREFIX = "tipline:backoff:"


@dataclass(frozen=True)
class Backoff:
    """How a scope's failures turn into a wait."""

    free: int  # failures before the first wait
    first: float  # seconds: the first wait
    longest: float  # seconds: no wait is longer
    memory: int = 24 * 3600  # seconds after the latest failure that a scope's count is kept

    def wait(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(self.longest, self.first * 2.0 ** min(failures - self.free, 64))


@dataclass(frozen=True)
class Scope:
    """What is counted (``parts``: e.g. "login", username, address) and by which rule."""

    parts: tuple[str, ...]
    rule: Backoff


class Failures:
    """Failure counts per scope: how many, and when the latest was."""

    def __init__(self, redis: Redis, key: bytes, clock: Callable[[], float]) -> None:
        self.redis = redis
        self.key = key
        self.clock = clock

    def _name(self, scope: Scope) -> str:
        return PREFIX + keyed_digest(self.key, "backoff", json.dumps(scope.parts))

    def _read(self, scopes: Sequence[Scope]) -> list[tuple[int, float]]:
        with self.redis.pipeline(transaction=False) as pipe:
            for scope in scopes:
                pipe.hmget(self._name(scope), "n", "at")
            found = pipe.execute()
        return [(int(n or 0), float(at or 0)) for n, at in found]

    def count(self, scope: Scope) -> int:
        return self._read([scope])[0][0]

    def wait(self, scopes: Sequence[Scope]) -> int:
        """Whole seconds before the next try (0: go ahead), the longest any scope asks."""
        now = self.clock()
        longest = 0.0
        for scope, (failures, latest) in zip(scopes, self._read(scopes), strict=True):
            longest = max(longest, latest + scope.rule.wait(failures) - now)
        return math.ceil(longest) if longest > 0 else 0

    def add(self, scopes: Sequence[Scope]) -> None:
        """One more failure in each scope, now."""
        now = self.clock()
        with self.redis.pipeline() as pipe:
            for scope in scopes:
                name = self._name(scope)
                pipe.hincrby(name, "n", 1)
                pipe.hset(name, "at", repr(now))
                pipe.expire(name, scope.rule.memory)
            pipe.execute()

    def clear(self, scopes: Sequence[Scope]) -> None:
        if scopes:
            self.redis.delete(*(self._name(scope) for scope in scopes))
