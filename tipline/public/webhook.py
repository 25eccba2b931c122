"""POST /zalo/webhook: verify, seal, commit, then answer.

The one row committed (tipline.intake.recording.record_inbound) is the event sealed to the transit
key; it is also the job that the worker expands into a tip and dispatches, so an answered
event cannot be lost.

Order of checks: size (413), signature present (401), JSON (400), event shape (400), signature
and app id (401). Nothing is stored before all of them pass. No log line carries tip text or a
Zalo id, at any level.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from tipline.intake.recording import record_inbound
from tipline.runtime import app_runtime
from tipline.transit import NoTransitKey
from tipline.zalo.events import MalformedEvent, read_envelope, read_message
from tipline.zalo.signature import verify_signature

log = logging.getLogger(__name__)
blueprint = Blueprint("intake", __name__)


def _error(status: int, reason: str) -> ResponseReturnValue:
    return jsonify({"ok": False, "error": reason}), status


@blueprint.post("/zalo/webhook")
def zalo_webhook() -> ResponseReturnValue:
    runtime = app_runtime()
    config = runtime.config
    request.max_content_length = config.max_webhook_bytes
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        log.warning("webhook refused: body over %d bytes", config.max_webhook_bytes)
        return _error(413, "body too large")
    signature = request.headers.get("X-ZEvent-Signature")
    if not signature:
        log.warning("webhook refused: no signature")
        return _error(401, "missing signature")
    try:
        envelope = read_envelope(json.loads(raw))
    except (ValueError, RecursionError, MalformedEvent) as exc:
        log.warning("webhook refused: malformed body (%s)", type(exc).__name__)
        return _error(400, "malformed event")
    if not verify_signature(
        signature,
        app_id=config.zalo_app_id,
        raw_body=raw,
        timestamp=envelope.timestamp,
        oa_secret_key=config.zalo_oa_secret_key,
    ):
        log.warning("webhook refused: bad signature")
        return _error(401, "bad signature")
    if envelope.app_id != config.zalo_app_id:
        log.warning("webhook refused: app id not served here")
        return _error(401, "unknown app")
    try:
        message = read_message(envelope)
    except MalformedEvent as exc:
        log.warning("webhook refused: %s", exc)
        return _error(400, "malformed event")
    if message is None:
        log.info("webhook event %r ignored", envelope.event_name[:64])  # repr: no forged lines
        return jsonify({"ok": True, "ignored": True})

    try:
        stored = record_inbound(runtime, message, raw)
    except SQLAlchemyError as exc:
        log.warning("webhook could not store the event (%s); Zalo will retry", type(exc).__name__)
        return _error(503, "storage unavailable")
    except NoTransitKey:
        log.warning("webhook could not seal the event: no transit epoch yet (no worker)")
        return _error(503, "not ready")
    if not stored:
        log.info("webhook duplicate delivery ignored")
        return jsonify({"ok": True, "duplicate": True})
    log.info("webhook stored a %s event", message.kind)
    return jsonify({"ok": True})
