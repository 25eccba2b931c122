"""What a process needs to do its work: configuration, database and Redis, built once.

The web app and the RQ workers share this, so a job runs with exactly the configuration of
the process that runs it and nothing travels through Redis but ids.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from flask import Flask, current_app
from redis import Redis
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tipline.audit import actions, record
from tipline.audit.witness import Witness
from tipline.config import Config, ConfigError
from tipline.db import make_engine, make_session_factory
from tipline.keystore import Keystore, check_volatile
from tipline.models import Outcome, UnitKey, key_trust
from tipline.outbox import RING_ON_COMMIT, wake_relay
from tipline.redis_conn import connect, connect_keystore
from tipline.transit import TransitKeys

REJECTION_QUIET = 60.0  # seconds between two key_rejected events about the same key


@dataclass
class Runtime:
    config: Config
    # Seconds since the epoch, for delays kept in Redis (tipline.web.backoff); tests stop it.
    clock: Callable[[], float] = field(default=time.time)
    # The webhook's fallback unit key of each OA, verified, with the monotonic time it was
    # read (tipline.intake.recording): not read again for every event.
    fallback_keys: dict[str, tuple[float, UnitKey | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.trust_keys()

    def trust_keys(self) -> None:
        """Which stored public keys may be sealed to (tipline.models.key_trust): this
        process's configuration, not the database's say-so; refusals recorded by this
        runtime."""
        secrets = self.config.secrets
        key_trust.configure(
            secrets.certification_key, secrets.key_certifier, self._record_rejected_key
        )

    def _record_rejected_key(self, subject: str | None) -> None:
        """A ``key_rejected`` audit event, written beside the refused action (which rolls
        back): in a thread of its own, so it never waits on that action's write lock."""
        detail = {"key": (subject or "unknown")[:100]}
        now = time.monotonic()
        if now - self.rejected_at.get(detail["key"], -REJECTION_QUIET) < REJECTION_QUIET:
            return  # one event a minute per key: refusals repeat with every request
        self.rejected_at[detail["key"]] = now

        def write() -> None:
            for _ in range(50):
                try:
                    with self.sessions() as session, session.begin():
                        record(session, action=actions.KEY_REJECTED, outcome=Outcome.DENIED,
                               detail=detail)  # fmt: skip
                    return
                except OperationalError:  # SQLite: the refused action still holds the lock
                    time.sleep(0.1)

        thread = threading.Thread(target=write, name="key-rejected", daemon=True)
        thread.start()
        self.rejections.append(thread)

    # The threads recording refused keys, and when each key was last recorded.
    rejections: list[threading.Thread] = field(default_factory=list, repr=False)
    rejected_at: dict[str, float] = field(default_factory=dict, repr=False)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.config.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        factory = make_session_factory(self.engine)

        # Jobs added in a session (tipline.outbox.add_jobs) ring the relay's doorbell once
        # they are committed; rolled back, they ring nothing.
        @event.listens_for(factory, "after_commit")
        def _ring(session: Session) -> None:
            if session.in_nested_transaction():
                return  # a SAVEPOINT released: nothing is committed yet
            if session.info.pop(RING_ON_COMMIT, False):
                wake_relay(self.redis)

        @event.listens_for(factory, "after_rollback")
        def _silence(session: Session) -> None:
            session.info.pop(RING_ON_COMMIT, None)

        return factory

    @cached_property
    def redis(self) -> Redis:
        if self.config.tier and not self.config.redis_url:  # TIPLINE_TIER=admin may lack it
            raise ConfigError(
                f"TIPLINE_TIER={self.config.tier}: this command needs Redis and "
                "TIPLINE_REDIS_URL is not set; no embedded Redis outside development"
            )
        return connect(self.config.redis_url, self.config.data_dir)

    @cached_property
    def keystore(self) -> Keystore:
        """The volatile key store; refused if its Redis persists (tipline.keystore)."""
        if self.config.tier and not self.config.keystore_url:
            raise ConfigError(
                f"TIPLINE_TIER={self.config.tier}: this process may not open the key store "
                "(TIPLINE_KEYSTORE_URL is a worker's setting); no embedded one outside development"
            )
        redis = connect_keystore(self.config.keystore_url, self.config.data_dir)
        check_volatile(redis, confirmed=self.config.keystore_confirmed_volatile)
        return Keystore(redis)

    @cached_property
    def witness(self) -> Witness:
        """Where audit checkpoints are shipped (tipline.audit.witness)."""
        return Witness(self.config.audit_witness, self.config.audit_syslog)

    @cached_property
    def transit(self) -> TransitKeys:
        """Transit epochs: public halves for every tier, private halves for workers."""
        return TransitKeys(
            self.engine, lambda: self.keystore, self.config.data_dir, self.config.transit_epoch
        )


_current: Runtime | None = None


def install(runtime: Runtime) -> Runtime:
    global _current
    _current = runtime
    runtime.trust_keys()
    return runtime


def current() -> Runtime:
    """The process's runtime; in a worker started from the CLI, built from the environment."""
    global _current
    if _current is None:
        _current = Runtime(Config.from_env())
    return _current


def runtime_of(app: Flask) -> Runtime:
    """The runtime ``create_app`` built ``app`` with (blueprints reach it here, not via the app)."""
    runtime = app.extensions["tipline"]
    if not isinstance(runtime, Runtime):
        raise TypeError("the app was not built by create_app")
    return runtime


def app_runtime() -> Runtime:
    """The runtime of the app handling the current request."""
    return runtime_of(current_app)
