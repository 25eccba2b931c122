"""A fake of Zalo's servers, for the demo and the tests (DESIGN.md: the one thing we cannot run).

Mounted at ``/_sim`` when ``Config.simulator`` is true. It speaks the OA API send endpoints, the
OA admin's consent page and the OAuth token endpoint as research/zalo.md §2–3 and §8.2 describe
them (authorization codes: single use, 10 minutes, PKCE S256; refresh tokens: single use and
rotating), records every send call, and stands in for Zalo's CDN for files the simulated
informant "uploads".

Its state is Zalo's, not Tipline's: it lives in its own SQLite file,
``<data_dir>/zalo-simulator/sim.db``, shared by every gunicorn worker, and never in Tipline's
database or Redis — the at-rest tests dump those and must find no Zalo user id there.

Zalo's reply windows are modelled (zalo.md §2.4, §8.2): the simulator learns when a user last
interacted with an OA from ``POST /_sim/interactions`` (``tipline zalo send`` reports each event
it posts; tests may backdate one), answers a consultation message free within 48 hours, charges
it to the OA's Zalo Cloud Account until 7 days (``-320`` when no account is linked, ``-321`` when
it has no money) and refuses it after (``-230``). ``POST /_sim/oa/<oa_id>`` makes an OA unfunded
or misconfigured (every send answered with one of Zalo's configuration codes: -209, -212, -219,
-221, -223, -224, -240, -242). A user the simulator never heard from is treated as inside the
free window (most tests deliver events without the sender). Follower status is not modelled
(queue ``-213`` through ``POST /_sim/faults``); OAuth error codes other than "non-zero" are
illustrative (Tipline treats any refusal as "re-consent", zalo.md §3).

Like the rest of Tipline, the simulator logs no token, user id or text: in the demo its log
lines land in Tipline's log.
"""

from __future__ import annotations

import logging
import mimetypes
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import escape

from keys import constant_time_equal, new_token, pkce_challenge, random_bytes
from tipline.config import DEMO_ZALO_APP_ID, DEMO_ZALO_APP_SECRET, Config
from tipline.runtime import app_runtime

log = logging.getLogger(__name__)
blueprint = Blueprint("zalo_simulator", __name__)

# Zalo's API puts credentials in headers whose names contain underscores. Werkzeug's server and
# gunicorn (header_map=drop, the default since 22) silently drop such headers, so behind
# gunicorn the simulator needs ``--header-map dangerous`` or, narrower,
# ``--forwarder-headers SCRIPT_NAME,PATH_INFO,ACCESS_TOKEN,SECRET_KEY`` (loopback callers only).
DROPPED_HEADER_HINT = (
    "simulator: no %s header arrived; the server in front may drop header names with "
    "underscores (gunicorn: --header-map dangerous, or --forwarder-headers "
    "SCRIPT_NAME,PATH_INFO,ACCESS_TOKEN,SECRET_KEY)"
)

ACCESS_TTL = 90_000  # 25 hours, as Zalo (zalo.md §3)
REFRESH_TTL = 90 * 24 * 3600  # 3 months
CODE_TTL = 600  # authorization codes: single use, 10 minutes
MAX_MEDIA_BYTES = 50 * 1024 * 1024
RATE_LIMIT = 4000  # requests/minute per app, announced in X-RateLimit-* headers

ERROR_MESSAGES = {
    -32: "The app or OA has reached the API rate limit",
    -201: "Parameters are invalid",
    -213: "User has not followed OA",
    -216: "Access token is invalid",
    -220: "Access token has expired or been removed",
    -227: "User has been banned or has been inactive for more than 45 days",
    -230: "User has not interacted with the OA in the past 7 days",
    -232: "User has not interacted or the last interaction has expired",
    -244: "User has restricted this type of message from the OA",
    -209: "API is not supported by this app",
    -212: "API has not been registered with this Official Account",
    -219: "App has been removed or disabled",
    -221: "Official Account has not been verified",
    -223: "Official Account is not allowed to use this feature",
    -224: "Official Account has not subscribed to the service package",
    -240: "MessageV2 API has been shut down, use MessageV3",
    -242: "appsecret_proof is invalid",
    -320: "Application needs to link with a Zalo Cloud Account to use paid features",
    -321: "Zalo Cloud Account linked with the application is out of money or cannot pay",
}
# What an OA can be told to answer every send with (POST /_sim/oa/<oa_id>): Zalo's
# configuration and account codes (zalo.md §8.2).
CONFIG_ERRORS = frozenset({-209, -212, -219, -221, -223, -224, -240, -242})
FREE_WINDOW_MS = 48 * 3600 * 1000
REPLY_WINDOW_MS = 7 * 24 * 3600 * 1000
CLOUD_ACCOUNT = {"funded": 0, "unlinked": -320, "empty": -321}

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY,
    kind TEXT NOT NULL,            -- 'access' | 'refresh'
    oa_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
-- Authorization codes from the consent page: single use, 10 minutes, bound to the PKCE
-- challenge the app sent (NULL: issued without one, e.g. by issue_code in a test).
CREATE TABLE IF NOT EXISTS codes (
    code TEXT PRIMARY KEY,
    oa_id TEXT NOT NULL,
    challenge TEXT,
    expires_at REAL NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    endpoint TEXT NOT NULL,
    oa_id TEXT,
    user_id TEXT,
    conversation_id TEXT,
    anonymous_id TEXT,
    text TEXT,
    error INTEGER NOT NULL,
    message_id TEXT
);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    error INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS interactions (
    oa_id TEXT NOT NULL,
    who TEXT NOT NULL,             -- a user id, or 'conversation:<id>' for the web chat
    last_ms INTEGER NOT NULL,      -- the user's last interaction, epoch milliseconds
    PRIMARY KEY (oa_id, who)
);
CREATE TABLE IF NOT EXISTS oa_state (
    oa_id TEXT PRIMARY KEY,
    cloud_account TEXT NOT NULL DEFAULT 'funded',  -- 'funded' | 'unlinked' | 'empty'
    config_error INTEGER                           -- answered to every send when set
);
CREATE TABLE IF NOT EXISTS media (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    data BLOB NOT NULL,
    created REAL NOT NULL
);
"""

_initialised: set[Path] = set()


def db_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / "zalo-simulator" / "sim.db"


@contextmanager
def _connect(data_dir: Path | str) -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode; callers open ``BEGIN IMMEDIATE`` where they must."""
    path = db_path(data_dir)
    if path not in _initialised:
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        if path not in _initialised:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            _initialised.add(path)
        conn.execute("PRAGMA busy_timeout=30000")
        yield conn
    finally:
        conn.close()


@contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction taken up front, so two workers cannot both use one token."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _mint(conn: sqlite3.Connection, oa_id: str, access_ttl: int) -> tuple[str, str]:
    now = time.time()
    access = new_token(64)
    refresh = new_token(64)
    conn.executemany(
        "INSERT INTO tokens (token, kind, oa_id, expires_at) VALUES (?, ?, ?, ?)",
        [
            (access, "access", oa_id, now + access_ttl),
            (refresh, "refresh", oa_id, now + REFRESH_TTL),
        ],
    )
    return access, refresh


def issue_tokens(
    data_dir: Path | str, oa_id: str, *, access_ttl: int = ACCESS_TTL
) -> tuple[str, str, int]:
    """Mint an OA's first token pair directly in the simulator's store.

    Stands in for the admin's consent in the console (zalo.md §3); ``tipline demo`` seals the
    result with ``tipline.zalo.tokens.store_tokens``. Returns (access, refresh, expires_in).
    """
    with _connect(data_dir) as conn, _write(conn):
        access, refresh = _mint(conn, oa_id, access_ttl)
    return access, refresh, access_ttl


def issue_code(
    data_dir: Path | str, oa_id: str, *, challenge: str | None = None, ttl: int = CODE_TTL
) -> str:
    """A one-time authorization code, as Zalo's consent page hands to the callback.

    ``challenge``: the PKCE ``code_challenge`` (S256) the app sent; the token endpoint then
    wants the matching ``code_verifier``. ``ttl`` is for tests (0: already expired).
    """
    code = new_token(43)
    with _connect(data_dir) as conn, _write(conn):
        conn.execute(
            "INSERT INTO codes (code, oa_id, challenge, expires_at) VALUES (?, ?, ?, ?)",
            (code, oa_id, challenge, time.time() + ttl),
        )
    return code


def _config() -> Config:
    return app_runtime().config


def _data_dir() -> Path:
    return _config().data_dir


def _zalo_error(code: int, message: str | None = None) -> ResponseReturnValue:
    return jsonify({"error": code, "message": message or ERROR_MESSAGES.get(code, "Error")})


def _oauth_error(code: int, name: str, description: str) -> ResponseReturnValue:
    # The shape of oauth.zaloapp.com's refusals: HTTP 200 with a negative error.
    return jsonify(
        {"error": code, "error_name": name, "error_reason": description,
         "error_description": description}
    )


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value and len(value) <= 64:
        return value
    return None


def _add_rate_headers(response: Response) -> Response:
    response.headers["X-RateLimit-Limit"] = str(RATE_LIMIT)
    response.headers["X-RateLimit-Remain"] = str(RATE_LIMIT - 1)
    return response


def _handle_send(endpoint: str, anonymous: bool) -> ResponseReturnValue:
    now = time.time()
    token = request.headers.get("access_token")
    if token is None:
        log.warning(DROPPED_HEADER_HINT, "access_token")
        token = ""  # no token: the simulator answers as Zalo does  # nosec B105
    body = request.get_json(silent=True)
    recipient = body.get("recipient") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    recipient = recipient if isinstance(recipient, dict) else {}
    text = message.get("text") if isinstance(message, dict) else None
    user_id = _str(recipient.get("user_id"))
    conversation_id = _str(recipient.get("conversation_id"))
    anonymous_id = _str(recipient.get("anonymous_id"))

    with _connect(_data_dir()) as conn, _write(conn):
        row = conn.execute(
            "SELECT oa_id FROM tokens WHERE token = ? AND kind = 'access' AND expires_at > ?",
            (token, now),
        ).fetchone()
        oa_id = row["oa_id"] if row is not None else None
        valid_recipient = (conversation_id and anonymous_id) if anonymous else user_id
        if oa_id is None:
            error = -216
        elif not valid_recipient or not isinstance(text, str) or not text or len(text) > 2000:
            error = -201
        else:
            fault = conn.execute("SELECT id, error FROM faults ORDER BY id LIMIT 1").fetchone()
            error = 0
            if fault is not None:
                conn.execute("DELETE FROM faults WHERE id = ?", (fault["id"],))
                error = int(fault["error"])
            else:
                who = user_id if not anonymous else f"conversation:{conversation_id}"
                error = _window_error(conn, oa_id, who or "", now)
        message_id = random_bytes(10).hex() if error == 0 else None
        conn.execute(
            "INSERT INTO calls (time, endpoint, oa_id, user_id, conversation_id, anonymous_id,"
            " text, error, message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now, endpoint, oa_id, user_id, conversation_id, anonymous_id,
             text if isinstance(text, str) else None, error, message_id),
        )
    if error != 0:
        return _zalo_error(error)
    data: dict[str, Any] = {"message_id": message_id, "sent_time": str(int(now * 1000))}
    if anonymous:
        data.update(conversation_id=conversation_id, anonymous_id=anonymous_id)
    else:
        data.update(user_id=user_id, quota={"quota_type": "reply", "remain": "8", "total": "8"})
    return _add_rate_headers(jsonify({"data": data, "error": 0, "message": "Success"}))


def _window_error(conn: sqlite3.Connection, oa_id: str, who: str, now: float) -> int:
    """What Zalo answers a consultation message to ``who`` now: the OA's configuration error,
    then the window: free for 48 hours after the user's last interaction, charged to the OA's
    Zalo Cloud Account until 7 days (-320/-321 when it cannot pay), refused after (-230)."""
    state = conn.execute(
        "SELECT cloud_account, config_error FROM oa_state WHERE oa_id = ?", (oa_id,)
    ).fetchone()
    if state is not None and state["config_error"] is not None:
        return int(state["config_error"])
    seen = conn.execute(
        "SELECT last_ms FROM interactions WHERE oa_id = ? AND who = ?", (oa_id, who)
    ).fetchone()
    if seen is None:
        return 0  # never heard of: treated as inside the free window (see the module's note)
    age = now * 1000 - int(seen["last_ms"])
    if age <= FREE_WINDOW_MS:
        return 0
    if age <= REPLY_WINDOW_MS:
        return CLOUD_ACCOUNT.get(state["cloud_account"] if state is not None else "funded", 0)
    return -230


@blueprint.post("/interactions")
def record_interaction() -> ResponseReturnValue:
    """A user interacted with an OA (sent a message, followed, clicked the chat button): what
    Zalo knows because it delivered the event. ``{"oa_id", "user_id" | "conversation_id",
    "at"}``, ``at`` in epoch milliseconds (default now; tests backdate it)."""
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    oa_id = _str(body.get("oa_id"))
    user_id = _str(body.get("user_id"))
    conversation_id = _str(body.get("conversation_id"))
    at = body.get("at", int(time.time() * 1000))
    if (
        oa_id is None
        or (user_id is None) == (conversation_id is None)
        or isinstance(at, bool)
        or not isinstance(at, int)
    ):
        return jsonify(
            {"ok": False, "error": "oa_id, one of user_id or conversation_id, at (ms)"}
        ), 400
    who = user_id if user_id is not None else f"conversation:{conversation_id}"
    with _connect(_data_dir()) as conn, _write(conn):
        conn.execute(
            "INSERT INTO interactions (oa_id, who, last_ms) VALUES (?, ?, ?) "
            "ON CONFLICT (oa_id, who) DO UPDATE SET last_ms = MAX(last_ms, excluded.last_ms)",
            (oa_id, who, at),
        )
    return jsonify({"ok": True})


@blueprint.post("/oa/<oa_id>")
def set_oa_state(oa_id: str) -> ResponseReturnValue:
    """Make an OA unfunded or misconfigured, as its admins can in real life:
    ``{"cloud_account": "funded" | "unlinked" | "empty", "error": -224 | null}``. Fields left
    out keep their value; ``{}`` answers the current state."""
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    account = body.get("cloud_account")
    error = body.get("error", ...)
    if account is not None and account not in CLOUD_ACCOUNT:
        return jsonify({"ok": False, "error": "cloud_account: funded, unlinked or empty"}), 400
    if error is not ... and error is not None and error not in CONFIG_ERRORS:
        return jsonify({"ok": False, "error": f"error: one of {sorted(CONFIG_ERRORS)}"}), 400
    with _connect(_data_dir()) as conn, _write(conn):
        conn.execute("INSERT OR IGNORE INTO oa_state (oa_id) VALUES (?)", (oa_id,))
        if account is not None:
            conn.execute(
                "UPDATE oa_state SET cloud_account = ? WHERE oa_id = ?", (account, oa_id)
            )
        if error is not ...:
            conn.execute("UPDATE oa_state SET config_error = ? WHERE oa_id = ?", (error, oa_id))
        row = conn.execute(
            "SELECT cloud_account, config_error FROM oa_state WHERE oa_id = ?", (oa_id,)
        ).fetchone()
    return jsonify(
        {"ok": True, "oa_id": oa_id, "cloud_account": row["cloud_account"],
         "error": row["config_error"]}
    )


@blueprint.post("/v3.0/oa/message/cs")
def send_consultation() -> ResponseReturnValue:
    return _handle_send("v3.0/oa/message/cs", anonymous=False)


@blueprint.post("/v2.0/oa/message")
def send_anonymous() -> ResponseReturnValue:
    return _handle_send("v2.0/oa/message", anonymous=True)


@blueprint.post("/v4/oa/access_token")
def access_token() -> ResponseReturnValue:
    config = _config()
    app_id = config.zalo_app_id or DEMO_ZALO_APP_ID
    app_secret = config.zalo_app_secret or DEMO_ZALO_APP_SECRET
    presented_secret = request.headers.get("secret_key")
    if presented_secret is None:
        log.warning(DROPPED_HEADER_HINT, "secret_key")
    if not constant_time_equal(presented_secret or "", app_secret):
        return _oauth_error(-14014, "Invalid secret key", "secret_key is wrong")
    form = request.form
    if form.get("app_id") != app_id:
        return _oauth_error(-14001, "Invalid app id", "app_id is wrong")
    grant_type = form.get("grant_type")
    if grant_type == "refresh_token":
        return _refresh(config, form.get("refresh_token", ""))
    if grant_type == "authorization_code":
        return _exchange_code(config, form.get("code", ""), form.get("code_verifier", ""))
    return _oauth_error(-14003, "Invalid parameter", "grant_type is wrong")


def _token_answer(access: str, refresh: str) -> ResponseReturnValue:
    return jsonify(
        {"access_token": access, "refresh_token": refresh, "expires_in": str(ACCESS_TTL)}
    )


def _refresh(config: Config, presented: str) -> ResponseReturnValue:
    with _connect(config.data_dir) as conn, _write(conn):
        row = conn.execute(
            "SELECT oa_id FROM tokens WHERE token = ? AND kind = 'refresh' AND used = 0"
            " AND expires_at > ?",
            (presented, time.time()),
        ).fetchone()
        if row is None:
            return _oauth_error(-14020, "Invalid refresh_token",
                                "refresh_token is invalid, expired or already used")
        # Single use: the presented refresh token dies with this answer (zalo.md §3).
        conn.execute("UPDATE tokens SET used = 1 WHERE token = ?", (presented,))
        access, refresh = _mint(conn, row["oa_id"], ACCESS_TTL)
    return _token_answer(access, refresh)


def _exchange_code(config: Config, code: str, verifier: str) -> ResponseReturnValue:
    """A consent's code for a first pair: unused, within 10 minutes, and with the verifier
    of the challenge it was issued for. A refused verifier leaves the code unused."""
    with _connect(config.data_dir) as conn, _write(conn):
        row = conn.execute(
            "SELECT oa_id, challenge FROM codes WHERE code = ? AND used = 0 AND expires_at > ?",
            (code, time.time()),
        ).fetchone()
        if row is None:
            return _oauth_error(-14019, "Invalid code", "code is invalid, expired or already used")
        if row["challenge"] is not None and not (
            verifier and constant_time_equal(pkce_challenge(verifier), row["challenge"])
        ):
            return _oauth_error(-14022, "Invalid code_verifier",
                                "code_verifier does not match the code_challenge")
        conn.execute("UPDATE codes SET used = 1 WHERE code = ?", (code,))
        access, refresh = _mint(conn, row["oa_id"], ACCESS_TTL)
    return _token_answer(access, refresh)


CONSENT_PAGE = """<!doctype html>
<html lang="vi">
<head><meta charset="utf-8"><title>Zalo (mô phỏng) · Cấp quyền cho ứng dụng</title></head>
<body>
<h1>Zalo (mô phỏng): cấp quyền cho ứng dụng</h1>
<p>Ứng dụng <strong>{app_id}</strong> xin quyền quản lý Official Account của bạn: nhận sự kiện
tin nhắn, gửi tin tư vấn. Sau khi đồng ý, Zalo chuyển bạn về <code>{redirect_uri}</code>.</p>
<form method="post" action="">
<input type="hidden" name="app_id" value="{app_id}">
<input type="hidden" name="redirect_uri" value="{redirect_uri}">
<input type="hidden" name="code_challenge" value="{code_challenge}">
<input type="hidden" name="state" value="{state}">
<label>Official Account (OA id) <input name="oa_id" value="{oa_id}" inputmode="numeric"></label>
<button type="submit" id="approve">Cho phép</button>
</form>
</body>
</html>
"""


@dataclass(frozen=True)
class _Consent:
    redirect_uri: str
    challenge: str
    state: str


class _Refused(Exception):
    def __init__(self, code: int, name: str, description: str) -> None:
        super().__init__(description)
        self.answer = (code, name, description)


def _consent_request(values: Mapping[str, str]) -> _Consent:
    """What a consent request asks; :class:`_Refused` with Zalo's refusal when it is wrong."""
    redirect_uri = values.get("redirect_uri", "")
    if values.get("app_id") != (_config().zalo_app_id or DEMO_ZALO_APP_ID):
        raise _Refused(-14001, "Invalid app id", "app_id is wrong")
    if not redirect_uri.startswith(("http://", "https://")) or len(redirect_uri) > 500:
        raise _Refused(-14003, "Invalid parameter", "redirect_uri is required")
    return _Consent(redirect_uri, values.get("code_challenge", ""), values.get("state", ""))


@blueprint.get("/v4/oa/permission")
def permission() -> ResponseReturnValue:
    """Zalo's consent page: the OA admin sees which app asks, picks the OA and approves.

    Real Zalo lets the admin choose among the OAs they manage; here the OA id is typed in (or
    given as ``?oa_id=``, which Zalo's own link does not carry).
    """
    try:
        asked = _consent_request(request.args)
    except _Refused as refused:
        return _oauth_error(*refused.answer)
    page = CONSENT_PAGE.format(
        app_id=escape(request.args.get("app_id", "")),
        redirect_uri=escape(asked.redirect_uri),
        code_challenge=escape(asked.challenge),
        state=escape(asked.state),
        oa_id=escape(request.args.get("oa_id", "")),
    )
    return Response(page, mimetype="text/html")


@blueprint.post("/v4/oa/permission")
def approve() -> ResponseReturnValue:
    """The admin approved: back to the app's redirect URI with ``code``, ``oa_id``, ``state``."""
    try:
        asked = _consent_request(request.form)
    except _Refused as refused:
        return _oauth_error(*refused.answer)
    oa_id = request.form.get("oa_id", "").strip()
    if not oa_id.isdigit() or len(oa_id) > 32:
        return _oauth_error(-14003, "Invalid parameter", "oa_id is not an OA id")
    code = issue_code(_data_dir(), oa_id, challenge=asked.challenge or None)
    query = {"code": code, "oa_id": oa_id}
    if asked.state:
        query["state"] = asked.state
    separator = "&" if "?" in asked.redirect_uri else "?"
    return redirect(f"{asked.redirect_uri}{separator}{urlencode(query)}")


@blueprint.get("/messages")
def messages() -> ResponseReturnValue:
    """Every send call received, oldest first; ``?oa_id=`` filters by OA."""
    query = "SELECT * FROM calls"
    params: tuple[str, ...] = ()
    if request.args.get("oa_id"):
        query += " WHERE oa_id = ?"
        params = (request.args["oa_id"],)
    with _connect(_data_dir()) as conn:
        rows = conn.execute(query + " ORDER BY id", params).fetchall()
    return jsonify([
        {
            "id": row["id"],
            "time": datetime.fromtimestamp(row["time"], UTC).isoformat(),
            "endpoint": row["endpoint"],
            "oa_id": row["oa_id"],
            "user_id": row["user_id"],
            "conversation_id": row["conversation_id"],
            "anonymous_id": row["anonymous_id"],
            "text": row["text"],
            "status": "ok" if row["error"] == 0 else "error",
            "error": row["error"],
            "message_id": row["message_id"],
        }
        for row in rows
    ])


@blueprint.delete("/messages")
def clear_messages() -> ResponseReturnValue:
    with _connect(_data_dir()) as conn:
        conn.execute("DELETE FROM calls")
    return jsonify({"ok": True})


@blueprint.post("/faults")
def add_faults() -> ResponseReturnValue:
    """Queue Zalo error codes for the next valid send calls, in order (for tests)."""
    body = request.get_json(silent=True)
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not all(
        isinstance(e, int) and not isinstance(e, bool) and e < 0 for e in errors
    ):
        return jsonify({"ok": False, "error": "errors must be a list of negative integers"}), 400
    with _connect(_data_dir()) as conn, _write(conn):
        conn.executemany("INSERT INTO faults (error) VALUES (?)", [(e,) for e in errors])
        pending = conn.execute("SELECT error FROM faults ORDER BY id").fetchall()
    return jsonify({"ok": True, "pending": [row["error"] for row in pending]})


@blueprint.get("/faults")
def list_faults() -> ResponseReturnValue:
    with _connect(_data_dir()) as conn:
        pending = conn.execute("SELECT error FROM faults ORDER BY id").fetchall()
    return jsonify({"pending": [row["error"] for row in pending]})


@blueprint.delete("/faults")
def clear_faults() -> ResponseReturnValue:
    with _connect(_data_dir()) as conn:
        conn.execute("DELETE FROM faults")
    return jsonify({"ok": True, "pending": []})


@blueprint.post("/media")
def upload_media() -> ResponseReturnValue:
    """Keep an uploaded file and answer with its URL, as Zalo's CDN URL in an event."""
    upload = request.files.get("file")
    if upload is None:
        return jsonify({"ok": False, "error": "multipart field 'file' is required"}), 400
    data = upload.read(MAX_MEDIA_BYTES + 1)
    if len(data) > MAX_MEDIA_BYTES:
        return jsonify({"ok": False, "error": "file too large"}), 413
    name = Path(upload.filename or "file").name[:200] or "file"
    content_type = (
        upload.mimetype
        if upload.mimetype and upload.mimetype != "application/octet-stream"
        else mimetypes.guess_type(name)[0] or "application/octet-stream"
    )
    media_id = random_bytes(16).hex()
    with _connect(_data_dir()) as conn:
        conn.execute(
            "INSERT INTO media (id, name, content_type, data, created) VALUES (?, ?, ?, ?, ?)",
            (media_id, name, content_type, data, time.time()),
        )
    url = url_for("zalo_simulator.get_media", media_id=media_id, _external=True)
    return jsonify(
        {"ok": True, "id": media_id, "url": url, "name": name, "size": len(data),
         "content_type": content_type}
    ), 201


@blueprint.get("/media/<media_id>")
def get_media(media_id: str) -> ResponseReturnValue:
    with _connect(_data_dir()) as conn:
        row = conn.execute(
            "SELECT content_type, data FROM media WHERE id = ?", (media_id,)
        ).fetchone()
    if row is None:
        return jsonify({"ok": False, "error": "not found"}), 404
    return Response(bytes(row["data"]), mimetype=row["content_type"])
