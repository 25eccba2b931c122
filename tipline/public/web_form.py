"""The anonymous web form for people without Zalo: /bao-tin to report, /tra-cuu to follow up.

- No IP address is kept. Flask-Limiter needs one for a moment to count requests: it counts
  under an HMAC of the address whose key lives in process memory only and changes every hour
  (:func:`tipline.web.limits.anonymous_address_key`), in Redis, with counters that expire
  with their window (an hour at most); nothing reaches the database, the audit log or a log
  line. (The reverse proxy and gunicorn access logs must leave the address out too: deploy/.)
- No third party: the anti-bot check is a proof of work (``keys.work``) the browser solves
  with ``static/pow.js``. The challenge is a token in the page, signed with the app's secret
  key and bound to the browser (tipline.web.csrf), good for :data:`CHALLENGE_LIFE` and once:
  a successful report marks it spent in Redis for as long as it would live.
- No server-side session: a visitor of /bao-tin or /tra-cuu gets none, and no session cookie
  (their forms' anti-CSRF tokens are bound to a cookie of the browser instead).
- The informant gets a receipt code and a passphrase, shown once. /tra-cuu opens the tip key
  with the passphrase (Argon2id), shows the status, the conversation (never internal notes)
  and takes an answer. Every post carries code and passphrase again: the server keeps
  neither the key nor a login between requests.
- Every post to /tra-cuu carries a proof of work first, always, not only after a failure:
  each try costs the server a 64 MiB Argon2id run, and the work is what keeps that cost with
  the visitor. Asking only after a failure would leave every first try per code and client
  free (an IPv6 /48 is 65,536 clients of /64), and the page would tell whoever asks that
  someone has tried a code. Each challenge is good once.
- Wrong passphrases make the work longer, never lock the code: each failure for the code or
  from the client (within :data:`FAILURE_WINDOW`) adds a bit, doubling the work, up to
  :data:`MAX_EXTRA_BITS`. The informant with the right passphrase always gets in, after the
  work; a lock after five failures let anyone who knew a receipt code keep its informant out.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, make_response, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from keys import BadToken, WrongSecret, keyed_digest, new_challenge, work_is_valid
from tipline.files import disk_full
from tipline.intake.recording import normalise_receipt_code
from tipline.intake.web import (
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_TEXT,
    Upload,
    append_answer,
    conversation,
    find_web_tip,
    open_web_tip,
    refuse_unknown,
    report_pending,
    submit_report,
)
from tipline.models import Unit
from tipline.runtime import app_runtime as runtime
from tipline.transit import NoTransitKey
from tipline.web.csrf import open_from_browser, sign_for_browser
from tipline.web.i18n import _
from tipline.web.labels import STATUS_LABELS
from tipline.web.limits import anonymous_address_key, limiter

blueprint = Blueprint("web_intake", __name__)
log = logging.getLogger(__name__)


POW_PURPOSE = "pow"
LOOKUP_POW_PURPOSE = "pow-lookup"  # /tra-cuu's challenges, not good for /bao-tin, nor back
CHALLENGE_LIFE = 2 * 3600  # seconds: time enough to write a long report; then a new one
SPENT = "tipline:pow-spent:"  # + the challenge's random part, for CHALLENGE_LIFE
FAILURE_WINDOW = 3600  # seconds a wrong passphrase adds to the work for its code and client
MAX_EXTRA_BITS = 6  # at most 64 times the first work (18 bits: about a minute on a phone)


def _no_store(body: str, status: int = 200) -> ResponseReturnValue:
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _units() -> list[Unit]:
    with runtime().sessions() as db:
        return list(db.scalars(select(Unit).order_by(Unit.level, Unit.name)))


MAX_PLACE = 200  # characters of the place typed or chosen on the form


def _places(units: list[Unit]) -> list[str]:
    """The communes the form offers as places: each commune-level unit's area, with its
    province ("xã Cái Nước, tỉnh Cà Mau"), so a name shared by two provinces stays apart."""
    by_id = {unit.id: unit for unit in units}

    def area(unit: Unit) -> str:
        return unit.name.removeprefix("Công an ").strip()

    places = []
    for unit in units:
        if unit.level != "commune":
            continue
        parent = by_id.get(unit.parent_id) if unit.parent_id is not None else None
        places.append(f"{area(unit)}, {area(parent)}" if parent is not None else area(unit))
    return sorted(places)


def _with_place(text: str) -> str:
    """The report's text with the place the informant named, on a line of its own: the router
    reads it like any place in the text, and the officer sees what was chosen."""
    place = " ".join(request.form.get("place", "").split())
    if len(place) > MAX_PLACE:
        raise ValueError(_("The place is too long."))
    # In Vietnamese whatever the page's language: the router and the officers read it.
    return f"{text}\nNơi xảy ra: {place}" if place else text


def _location() -> tuple[float, float] | None:
    lat, lon = request.form.get("lat", "").strip(), request.form.get("lon", "").strip()
    if not lat and not lon:
        return None
    try:
        point = (float(lat), float(lon))
    except ValueError as exc:
        raise ValueError(_("The location must be two numbers (latitude, longitude).")) from exc
    if not (-90 <= point[0] <= 90 and -180 <= point[1] <= 180):
        raise ValueError(_("The location must be two numbers (latitude, longitude)."))
    return point


def _uploads() -> list[Upload]:
    """The files chosen on the form (none is fine); ValueError names what is wrong."""
    uploads = []
    for item in request.files.getlist("files"):
        if not item.filename:
            continue  # the empty part a browser sends when no file was chosen
        data = item.stream.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ValueError(
                _("Each file may be at most %(mb)d MB.", mb=MAX_FILE_BYTES // (1024 * 1024))
            )
        if not data:
            raise ValueError(_("A file you chose is empty."))
        uploads.append(Upload(name=item.filename[-200:], data=data))
    if len(uploads) > MAX_FILES:
        raise ValueError(_("At most %(count)d files per report.", count=MAX_FILES))
    return uploads


def challenge_token(
    browser: str | None = None, *, issued: int | None = None, purpose: str = POW_PURPOSE
) -> str:
    """A fresh proof-of-work challenge for this browser (or ``browser``), signed."""
    return sign_for_browser(purpose, new_challenge(), browser=browser, issued=issued)


def _work_done(bits: int, purpose: str = POW_PURPOSE) -> str | None:
    """The posted challenge's random part if it is ours, for this browser, alive and solved."""
    challenge = request.form.get("challenge", "")
    try:
        random_part = open_from_browser(purpose, challenge, max_age=CHALLENGE_LIFE)
    except BadToken:
        return None
    if not random_part or not work_is_valid(challenge, request.form.get("nonce", ""), bits):
        return None
    return random_part


def _spend(random_part: str) -> bool:
    """Mark a challenge used; False if it already was (a replay, or two posts at once)."""
    return bool(runtime().redis.set(SPENT + random_part, 1, nx=True, ex=CHALLENGE_LIFE))


def _report_form(errors: list[str], status: int = 200) -> ResponseReturnValue:
    challenge = challenge_token()
    chosen = request.values.get("don-vi") or request.form.get("unit", "")
    units = _units()
    return _no_store(
        render_template(
            "web/report.html",
            units=units,
            places=_places(units),
            place=request.form.get("place", ""),
            chosen=chosen,
            challenge=challenge,
            bits=runtime().config.pow_bits,
            errors=errors,
            text=request.form.get("text", ""),
            lat=request.form.get("lat", ""),
            lon=request.form.get("lon", ""),
            max_files=MAX_FILES,
            max_mb=MAX_FILE_BYTES // (1024 * 1024),
        ),
        status,
    )


@blueprint.get("/bao-tin")
def report() -> ResponseReturnValue:
    return _report_form([])


@blueprint.post("/bao-tin")
@limiter.limit("10 per hour", key_func=anonymous_address_key)
def submit() -> ResponseReturnValue:
    config = runtime().config
    work = _work_done(config.pow_bits)
    errors: list[str] = []
    failed_work = _("The anti-spam check failed. Please wait for it to finish and send again.")
    if work is None:
        errors.append(failed_work)
    text = request.form.get("text", "").strip()
    if not text:
        errors.append(_("Please describe what happened."))
    elif len(text) > MAX_TEXT:
        errors.append(_("The text is too long."))
    unit_id = request.form.get("unit", "")
    if not any(unit.public_id == unit_id for unit in _units()):
        errors.append(_("Please choose the police unit."))
    location = None
    try:
        location = _location()
        text = _with_place(text)
    except ValueError as exc:
        errors.append(str(exc))
    uploads: list[Upload] = []
    try:
        uploads = _uploads()
    except ValueError as exc:
        errors.append(str(exc))
    if not errors and work is not None and not _spend(work):
        errors.append(failed_work)  # the same challenge again: good once
    if errors:
        return _report_form(errors, 400)
    try:
        receipt = submit_report(runtime(), unit_id, text, location, uploads)
    except NoTransitKey:
        abort(503, _("The service is starting. Please send your report again in a few minutes."))
    except Exception as exc:
        if not disk_full(exc):
            raise  # the Vietnamese 500 page (tipline.web)
        # submit_report removed what it had written: nothing of the report is kept. The text
        # stays in the form; the files must be chosen again.
        log.error("web form: storage full; the report was not stored")
        full = _(
            "The server cannot store reports right now (its storage is full). Nothing of your "
            "report was kept. Please try again later, or call the police unit's hotline if it "
            "is urgent."
        )
        return _report_form([full], 507)
    return _no_store(render_template("web/receipt.html", receipt=receipt))


def _failures_key(code: str) -> str:
    digest = keyed_digest(runtime().config.secrets.alias_key, "lookup", code.strip().upper())
    return f"tipline:lookup-failures:{digest}"


def _client_failures_key() -> str:
    """This client's wrong passphrases, under the limiter's key: no address reaches Redis."""
    return f"tipline:lookup-client-failures:{anonymous_address_key()}"


def _lookup_bits(code: str | None) -> int:
    """The work a post for ``code`` (None: any code) from this client must carry: more after
    wrong tries for the code or from the client."""
    keys = [_client_failures_key()] + ([] if code is None else [_failures_key(code)])
    failures = max(int(value or 0) for value in runtime().redis.mget(keys))
    return runtime().config.pow_bits + min(failures, MAX_EXTRA_BITS)


def _lookup_failed(code: str) -> None:
    with runtime().redis.pipeline() as pipe:
        for key in (_failures_key(code), _client_failures_key()):
            pipe.incr(key)
            pipe.expire(key, FAILURE_WINDOW)
        pipe.execute()


def _lookup_form(
    error: str | None = None, status: int = 200, *, bits: int | None = None
) -> ResponseReturnValue:
    return _no_store(
        render_template(
            "web/lookup.html",
            error=error,
            code=request.form.get("code", ""),
            challenge=challenge_token(purpose=LOOKUP_POW_PURPOSE),
            bits=_lookup_bits(None) if bits is None else bits,
        ),
        status,
    )


@blueprint.get("/tra-cuu")
def lookup() -> ResponseReturnValue:
    return _lookup_form()


@blueprint.post("/tra-cuu")
@limiter.limit("30 per hour", key_func=anonymous_address_key)
def follow_up() -> ResponseReturnValue:
    rt = runtime()
    code = normalise_receipt_code(request.form.get("code", ""))
    passphrase = request.form.get("passphrase", "")
    # The work first: nothing else is looked at, and no Argon2id runs, without it.
    bits = _lookup_bits(code)
    work = _work_done(bits, LOOKUP_POW_PURPOSE)
    if work is None or not _spend(work):
        if bits > rt.config.pow_bits and _work_done(rt.config.pow_bits, LOOKUP_POW_PURPOSE):
            message = _(
                "Wrong passphrases were tried for this code, so the anti-spam check takes "
                "longer now. Please wait for it to finish, then look up again."
            )
        else:
            message = _(
                "The anti-spam check failed. Please wait for it to finish and look up again."
            )
        return _lookup_form(message, 403, bits=bits)
    refused = _("The receipt code or the passphrase is wrong.")
    with rt.sessions() as db, db.begin():
        tip = find_web_tip(db, code) if code else None
        if tip is None and code and report_pending(db, rt.config, code):
            return _lookup_form(
                _("Your report is still being received. Please try again in a minute."), 409
            )
        try:
            if tip is None:
                refuse_unknown(passphrase, rt.config.kdf_cost)
            tip_key = open_web_tip(tip, passphrase, rt.config.kdf_cost)
        except WrongSecret:
            _lookup_failed(code)
            return _lookup_form(refused, 403, bits=_lookup_bits(code))
        rt.redis.delete(_failures_key(code))  # the informant got in: no more work for others
        notice = None
        answer = request.form.get("answer", "").strip()
        if answer:
            if not tip.is_open:
                notice = _("This report is closed; please send a new report instead.")
            elif len(answer) > MAX_TEXT:
                notice = _("The text is too long.")
            else:
                append_answer(db, tip, answer)
                db.flush()
                notice = _("Your answer was added to the report.")
        page = render_template(
            "web/status.html",
            tip=tip,
            status=STATUS_LABELS.get(tip.status, tip.status),  # type: ignore[call-overload]
            entries=conversation(tip, tip_key),
            code=code,
            passphrase=passphrase,
            notice=notice,
            challenge=challenge_token(purpose=LOOKUP_POW_PURPOSE),
            bits=_lookup_bits(code),
        )
    return _no_store(page)
