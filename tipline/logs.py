"""Structured logs for every process: one JSON object per line, with time, level and request id.

Web tiers (gunicorn's error and access logs too, :class:`GunicornLogger`), workers and the CLI
all log through :func:`configure`. Each line carries ``time`` (UTC, ISO 8601), ``level``,
``logger``, ``message``, ``process`` and ``request_id``: the id of the HTTP request (also sent
back as ``X-Request-Id``), of the worker job or of the CLI run that wrote it, so one request's
lines can be found across a tier's processes.

Nothing identifying a tip reaches a line: the formatter replaces every public id (16 base32
characters, tips, messages, attachments), every receipt code and every job id made of them with
a placeholder, whatever the message or the library that wrote it (RQ logs job ids; gunicorn's
access log has paths such as ``/triage/tips/<id>``). Tip text never reaches a log call at all
(tests/test_logs.py follows a tip through every process and searches the lines).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from gunicorn.glogging import Logger as _GunicornBase

from keys import new_token

# The request id of what this thread or task is doing (a request, a job, a CLI run).
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("tipline_request_id", default="-")

# Public ids (tipline.models.base.new_public_id: 16 characters of Crockford's base32, lower
# case), receipt codes (TL-XXXX-XXXX, upper case), and nothing shorter. A sixteen-letter word
# or number is hidden too; harmless.
_PUBLIC_ID = re.compile(r"(?<![A-Za-z0-9])[0-9a-hjkmnp-tv-z]{16}(?![A-Za-z0-9])")
_RECEIPT = re.compile(r"TL-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", re.IGNORECASE)
# An incoming X-Request-Id is kept only when it looks like one (nginx's $request_id: 32 hex).
_INCOMING_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def redact(text: str) -> str:
    """``text`` with tip, message and attachment ids and receipt codes replaced."""
    return _RECEIPT.sub("TL-…", _PUBLIC_ID.sub("<id>", text))


def new_request_id(incoming: str | None = None) -> str:
    """A request's id: the proxy's when well formed (one id across nginx and Tipline)."""
    if incoming and _INCOMING_ID.match(incoming):
        return incoming
    return new_token(12).lower()


class JsonFormatter(logging.Formatter):
    """One JSON object per record, ids redacted (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            message += "\n" + self.formatStack(record.stack_info)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(message),
            "process": record.process,
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update({k: redact(str(v)) for k, v in extra.items()})
        return json.dumps(entry, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (a test runner may swap it)."""

    tipline_json = True

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it
        pass


def configure(level: int = logging.WARNING) -> None:
    """Send this process's logs to stderr as JSON lines, at ``level``.

    Replaces the plain handlers set before (basicConfig's). Where a handler of another kind
    is in place (a test runner's capture, in-process), nothing is added and the level is left,
    as basicConfig would.
    """
    root = logging.getLogger()
    foreign = False
    for handler in list(root.handlers):
        if getattr(handler, "tipline_json", False) or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
        else:
            foreign = True
    if foreign:  # as basicConfig: a host (a test runner) already collects the records
        return
    root.addHandler(_StderrHandler())
    root.setLevel(level)
    # RQ gives "rq.worker" plain handlers of its own unless a handler is already in place
    # (rq.logutils); with ours on the root it adds none, and its records come here.


def level_from_env(environ: dict[str, str] | None = None, default: str = "WARNING") -> int:
    """TIPLINE_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR), for the web tiers."""
    import os

    name = (environ if environ is not None else os.environ).get("TIPLINE_LOG_LEVEL") or default
    value = logging.getLevelName(name.strip().upper())
    if not isinstance(value, int):
        raise ValueError(f"TIPLINE_LOG_LEVEL: not a log level: {name!r}")
    return value


class RepeatFilter(logging.Filter):
    """Lets the first record containing ``prefix`` through, then one per ``window`` seconds
    with the number held back: a Redis outage is one line a minute, not one every 2 s."""

    def __init__(self, prefix: str, window: float = 60.0) -> None:
        super().__init__()
        self.prefix = prefix
        self.window = window
        self.last = float("-inf")
        self.held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.prefix not in str(record.msg):
            return True
        if record.created - self.last < self.window:
            self.held += 1
            return False
        if self.held:
            record.msg = f"{record.msg} ({self.held} more like this in the last minute(s))"
        self.last, self.held = record.created, 0
        return True


def start_run(kind: str) -> str:
    """Give this process (a CLI run, a job) a fresh request id; returns it."""
    value = f"{kind}-{new_token(12).lower()}"
    request_id.set(value)
    return value


class GunicornLogger(_GunicornBase):  # type: ignore[misc]  # gunicorn has no types
    """gunicorn's logger with Tipline's JSON lines: ``--logger-class tipline.logs.GunicornLogger``.

    The access line is structured too: method, path (ids redacted), status, seconds and the
    request id the app sent back. Query strings are never logged (search words stay out).
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        headers = dict((name.lower(), value) for name, value in (resp.headers or []))
        status = str(resp.status).split(" ", 1)[0] if resp.status else "-"
        seconds = request_time.seconds + request_time.microseconds / 1e6
        self.access_log.info(
            "%s %s %s",
            environ.get("REQUEST_METHOD", "-"),
            environ.get("PATH_INFO", "-"),
            status,
            extra={
                "request_id": headers.get("x-request-id", "-"),
                "fields": {"status": status, "seconds": f"{seconds:.4f}"},
            },
        )
