"""What a process needs to do its work: configuration, database and Redis, built once.

The web app and the RQ workers share this, so a job runs with exactly the configuration of
the process that runs it and nothing travels through Redis but ids.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from flask import Flask, current_app
from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tipline.audit.witness import Witness
from tipline.config import Config
from tipline.db import make_engine, make_session_factory
from tipline.keystore import Keystore, check_volatile
from tipline.redis_conn import connect, connect_keystore
from tipline.transit import TransitKeys


@dataclass
class Runtime:
    config: Config
    # Seconds since the epoch, for delays kept in Redis (tipline.web.backoff); tests stop it.
    clock: Callable[[], float] = field(default=time.time)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.config.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def redis(self) -> Redis:
        return connect(self.config.redis_url, self.config.data_dir)

    @cached_property
    def keystore(self) -> Keystore:
        """The volatile key store; refused if its Redis persists (tipline.keystore)."""
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
