"""The volatile key store: keys that must never reach a disk.

Some keys decide whether a seized disk opens anything: the private halves of the transit
epochs (every tip until dispatch, files being fetched, replies being sent) and the key of each
informant's reply address. They live only in a Redis server that keeps nothing on disk (no
RDB snapshots, no AOF): a copy of every disk, backup and configuration secret finds none of
them, and deleting one (or letting it expire) erases, for good, every copy of what it sealed,
including the copies that database free pages, WAL files and backups keep (docs/threat-model.md).

The price, chosen on purpose: a restart of that server loses the keys. Nothing acknowledged is
lost with them: each event is also sealed to its OA's unit key and waits for that unit's key
holders (tipline.transit); a lost reply address means an officer's answer waits until the
informant writes again.

:func:`check_volatile` refuses a server that persists, unless the operator vouches for one
whose CONFIG command is disabled (``TIPLINE_KEYSTORE_VOLATILE=confirmed``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from redis import Redis
from redis.exceptions import ResponseError

PREFIX = "tipline:volatile:"


class PersistentKeystoreError(RuntimeError):
    """The key store's Redis writes to disk: keys kept there would survive on a seized disk."""


def check_volatile(redis: Redis, *, confirmed: bool = False) -> None:
    """Refuse a Redis that snapshots or logs to disk (``save`` set, ``appendonly yes``)."""
    try:
        save = redis.config_get("save").get("save", "")
        appendonly = redis.config_get("appendonly").get("appendonly", "no")
    except ResponseError as refused:  # CONFIG disabled or not permitted for this user
        if confirmed:
            return
        raise PersistentKeystoreError(
            "cannot read the key store's persistence settings (CONFIG is not allowed): set "
            'TIPLINE_KEYSTORE_VOLATILE=confirmed once its Redis has `save ""` and '
            "`appendonly no`"
        ) from refused
    if str(save).strip() or str(appendonly).strip().lower() != "no":
        raise PersistentKeystoreError(
            "the key store's Redis persists to disk (save "
            f"{save!r}, appendonly {appendonly!r}): give TIPLINE_KEYSTORE_URL a server with "
            '`save ""` and `appendonly no` (deploy/redis-keystore.conf)'
        )


class Keystore:
    """Named secrets with a lifetime, in the volatile Redis (:func:`check_volatile`)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def put(
        self, name: str, value: bytes, ttl: timedelta | None, *, only_if_new: bool = False
    ) -> bool:
        """Keep ``value`` for ``ttl`` (None: as long as the store runs); with ``only_if_new``,
        not if ``name`` exists. Stored?"""
        px = _ms(ttl) if ttl is not None else None
        stored = self.redis.set(PREFIX + name, value, px=px, nx=only_if_new)
        return bool(stored)

    def get_or_make(self, name: str, make: Callable[[], bytes]) -> bytes:
        """The value of ``name``, made (once, whoever is first) if there is none."""
        value = self.get(name)
        if value is None:
            self.put(name, make(), None, only_if_new=True)
            value = self.get(name)
        if value is None:
            raise RuntimeError(f"the key store lost {name} as it was made")
        return value

    def get(self, name: str) -> bytes | None:
        value = self.redis.get(PREFIX + name)
        return bytes(value) if value is not None else None  # type: ignore[arg-type]

    def get_and_extend(self, name: str, ttl: timedelta) -> bytes | None:
        """The value of ``name``, kept for ``ttl`` from now (None: gone): one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(PREFIX + name)
            pipe.pexpire(PREFIX + name, _ms(ttl))
            value, _extended = pipe.execute()
        return bytes(value) if value is not None else None

    def holds(self, *names: str) -> bool:
        """Whether every one of ``names`` is held (their values are not read)."""
        return int(self.redis.exists(*(PREFIX + name for name in names))) == len(set(names))

    def delete(self, *names: str) -> int:
        """Erase: what those keys sealed is unreadable from now on, wherever it is copied."""
        if not names:
            return 0
        return int(self.redis.delete(*(PREFIX + name for name in names)))

    def contents(self) -> dict[str, bytes]:
        """Every key held now (tests: what a running-server compromise would see)."""
        found: dict[str, bytes] = {}
        for raw in self.redis.scan_iter(match=PREFIX + "*"):
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            value = self.redis.get(name)
            if value is not None:
                found[name.removeprefix(PREFIX)] = bytes(value)  # type: ignore[arg-type]
        return found


def _ms(ttl: timedelta) -> int:
    return max(int(ttl.total_seconds() * 1000), 1)
