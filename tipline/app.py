"""The Flask application factory."""

from __future__ import annotations

import logging

from flask import Flask

from tipline.config import Config
from tipline.runtime import Runtime, install

log = logging.getLogger(__name__)


def create_app(config: Config | None = None) -> Flask:
    """Build the web app for ``config`` (default: the environment, CONTRACT.md)."""
    config = config or Config.from_env()
    runtime = install(Runtime(config))
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.secret_key,
        TESTING=config.testing,
        # Larger bodies are refused before they are read; the webhook has its own smaller cap.
        MAX_CONTENT_LENGTH=max(config.max_webhook_bytes, 16 * 1024 * 1024),
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Vietnamese stays readable
    app.extensions["tipline"] = runtime

    from tipline.health import blueprint as health
    from tipline.intake.webhook import blueprint as webhook

    app.register_blueprint(health)
    app.register_blueprint(webhook)
    if config.simulator:
        from tipline.zalo.simulator import blueprint as simulator

        app.register_blueprint(simulator, url_prefix="/_sim")
    return app


def runtime_of(app: Flask) -> Runtime:
    runtime = app.extensions["tipline"]
    if not isinstance(runtime, Runtime):
        raise TypeError("the app was not built by create_app")
    return runtime
