"""The Flask application factory."""

from __future__ import annotations

import io
import logging
from importlib.resources import files
from pathlib import Path
from typing import IO

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin

from tipline.config import Config
from tipline.runtime import Runtime, install, runtime_of

__all__ = ["InMemoryRequest", "create_app", "runtime_of"]

log = logging.getLogger(__name__)


def package_folder(package: str) -> Path:
    """The folder of ``package`` on disk, the same in an editable checkout and a wheel.

    The templates are the package ``tipline.templates``: the top-level ``templates/`` of the
    checkout, ``tipline/templates/`` in an installed wheel (setup.py maps the name).
    """
    found = files(package)
    if not isinstance(found, Path):
        raise RuntimeError(f"{package} is not installed as files on disk")
    return found


class InMemoryRequest(Request):
    """A request whose uploaded files stay in memory.

    Werkzeug spools an upload over 500 KB to a temporary file: for the web form that would be
    an informant's evidence, unencrypted, on disk. The request size is capped
    (``MAX_CONTENT_LENGTH``), so memory is bounded too.
    """

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return io.BytesIO()


def _request_ids(app: Flask) -> None:
    """Each request gets an id (the proxy's X-Request-Id when well formed): on its log lines
    (tipline.logs) and sent back in ``X-Request-Id``, so an operator finds one request's lines."""
    from flask import request

    from tipline.logs import new_request_id, request_id

    @app.before_request
    def _start() -> None:
        request_id.set(new_request_id(request.headers.get("X-Request-Id")))

    @app.after_request
    def _tag(response: Response) -> Response:
        response.headers["X-Request-Id"] = request_id.get()
        return response


class _NoSessions(SessionInterface):
    """Flask's null session for every request: reading or writing it raises."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return None

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None


def create_app(
    config: Config | None = None, *, staff_ui: bool = True, public_form: bool | None = None
) -> Flask:
    """Build the web app for ``config`` (default: the environment, CONTRACT.md).

    Every app serves the webhook and the health check. ``staff_ui`` adds the staff UI
    (triage/); ``public_form`` the anonymous web form (/bao-tin, /tra-cuu), by default where
    the staff UI is. So ``staff_ui=False`` alone builds the intake tier (what faces Zalo need
    not carry the staff UI, its sessions or its routes), and ``staff_ui=False,
    public_form=True`` the public tier: the web form in a gunicorn pool of its own, whose
    Argon2id runs (one per /tra-cuu post) cannot starve the officers' processes.
    """
    public_form = staff_ui if public_form is None else public_form
    config = config or Config.from_env()
    runtime = install(Runtime(config))
    app = Flask(
        __name__,
        template_folder=str(package_folder("tipline.templates")),
        static_folder=str(package_folder("tipline.web") / "static"),
    )
    app.request_class = InMemoryRequest
    app.config.update(
        SECRET_KEY=config.secret_key,
        TESTING=config.testing,
        # Larger bodies are refused before they are read; the webhook has its own smaller cap.
        MAX_CONTENT_LENGTH=max(config.max_webhook_bytes, 16 * 1024 * 1024),
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Vietnamese stays readable
    app.extensions["tipline"] = runtime
    if config.behind_tls:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # One reverse proxy ends TLS (deploy/): trust its scheme and client address, so HSTS
        # is sent and audit events carry the officer's address, not the proxy's.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]

    _request_ids(app)

    from tipline.health import blueprint as health
    from tipline.public.webhook import blueprint as webhook

    app.register_blueprint(health)
    app.register_blueprint(webhook)
    if config.simulator:
        from tipline.zalo.simulator import blueprint as simulator

        app.register_blueprint(simulator, url_prefix="/_sim")

    if staff_ui or public_form:
        from tipline.web import init_web

        init_web(app, runtime)
    else:
        # The intake tier keeps no sessions: no cookie is read or written where Zalo (and
        # anyone else) reaches, and no request pays for opening one (issue 15: 5 % of the
        # webhook's CPU).
        app.session_interface = _NoSessions()
    if public_form:
        from tipline.public.web_form import blueprint as web_form

        app.register_blueprint(web_form)
    if staff_ui:
        from triage import init_triage

        init_triage(app)
    return app
