"""POST /zalo/webhook: verify, seal, commit, then answer.

The one row committed (tipline.intake.recording.record_inbound) is the event sealed to the transit
key; it is also the job that the worker expands into a tip and dispatches, so an answered
event cannot be lost.

Order of checks: size (413), signature present (401), a timestamp to check it with (400: a
body without one cannot be Zalo's), signature (401). Everything Zalo signed is then answered
200, because Zalo retries any other answer and then cancels the app's webhook subscription for
every OA (research/zalo.md §8.2):

- a message, an OA admin's reply typed on Zalo, a withdrawal: stored for the worker;
- an event that carries nothing for Tipline (follow, receipts, echoes of our own sends, names
  nobody documents, a console's test delivery): ``ignored``;
- anything that cannot be read: kept in quarantine (tipline.intake.recording.record_quarantine),
  sealed to the receiving OA's unit key, and shown to admins as metadata.

Only the database or the transit key being unavailable gives a 503, so that Zalo retries. No
log line carries tip text or a Zalo id, at any level.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from tipline.intake.recording import record_event, record_quarantine
from tipline.models import QuarantineReason
from tipline.runtime import Runtime, app_runtime
from tipline.transit import NoTransitKey
from tipline.zalo.events import (
    MalformedEvent,
    oa_candidates,
    parse_body,
    read_envelope,
    read_event,
    signed_timestamp,
)
from tipline.zalo.signature import verify_signature

log = logging.getLogger(__name__)
blueprint = Blueprint("intake", __name__)


def _error(status: int, reason: str) -> ResponseReturnValue:
    return jsonify({"ok": False, "error": reason}), status


def _name(body: object) -> str:
    """The event name for a log line: repr (no forged lines), bounded."""
    name = body.get("event_name") if isinstance(body, dict) else None
    return repr(name)[:64] if isinstance(name, str) else "(none)"


def _quarantine(
    runtime: Runtime, raw: bytes, body: object, exc: MalformedEvent
) -> ResponseReturnValue:
    try:
        new = record_quarantine(
            runtime,
            raw,
            reason=exc.reason,
            oa_candidates=oa_candidates(body),
            event_name=body.get("event_name") if isinstance(body, dict) else None,
        )
    except SQLAlchemyError as error:
        log.warning("webhook could not quarantine an event (%s); Zalo will retry",
                    type(error).__name__)
        return _error(503, "storage unavailable")
    log.warning(
        "webhook quarantined a %s event (%s)%s", _name(body), exc.reason, "" if new else " again"
    )
    return jsonify({"ok": True, "quarantined": True})


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
    body = parse_body(raw)
    timestamp = signed_timestamp(raw, body)
    if timestamp is None:
        log.warning("webhook refused: no timestamp to check the signature with")
        return _error(400, "malformed event")
    if not verify_signature(
        signature,
        app_id=config.zalo_app_id,
        raw_body=raw,
        timestamp=timestamp,
        oa_secret_key=config.zalo_oa_secret_key,
    ):
        log.warning("webhook refused: bad signature")
        return _error(401, "bad signature")
    # From here on the body is Zalo's: 200, whatever it holds.
    try:
        envelope = read_envelope(body)
        if envelope.app_id != config.zalo_app_id:
            raise MalformedEvent(QuarantineReason.OTHER_APP, "another app id")
        event = read_event(envelope)
    except MalformedEvent as exc:
        return _quarantine(runtime, raw, body, exc)
    if event is None:
        log.info("webhook event %s ignored", _name(body))
        return jsonify({"ok": True, "ignored": True})

    try:
        stored = record_event(runtime, event.oa_id, event.msg_id, raw)
    except SQLAlchemyError as exc:
        log.warning("webhook could not store the event (%s); Zalo will retry", type(exc).__name__)
        return _error(503, "storage unavailable")
    except NoTransitKey:
        log.warning("webhook could not seal the event: no transit epoch yet (no worker)")
        return _error(503, "not ready")
    if not stored:
        log.info("webhook duplicate delivery ignored")
        return jsonify({"ok": True, "duplicate": True})
    log.info("webhook stored a %s event", event.kind)
    return jsonify({"ok": True})
