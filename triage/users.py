"""The logged-in account as Flask-Login sees it, and the officer's unlocked key for this request.

The unlocked private key lives in the server-side session (Redis) sealed under a secret that
only the officer's browser holds in a cookie (keys.session); neither half opens it alone.
"""

from __future__ import annotations

import base64
import binascii

from flask import g, request, session
from flask_login import UserMixin, current_user
from sqlalchemy import select
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Response

from keys import PrivateKey, WrongSecret
from tipline.keychain import unit_keys_of
from tipline.models import KEY_HOLDING_ROLES, Officer, Role
from tipline.models.sealed_fields import OFFICER_KEY_SESSION_WRAP
from tipline.runtime import Runtime, app_runtime

UNLOCK_COOKIE = "tipline_unlock"
KEY_IN_SESSION = "officer_key"
EPOCH_IN_SESSION = "session_epoch"  # the account's session_epoch when this session began
SESSION_IDS = "tipline:officer-sessions:"  # + public id: a Redis set of the account's sessions
SESSION_PREFIX = "tipline:session:"  # Flask-Session's keys (tipline.web)


class StaffUser(UserMixin):
    """What a request knows about its officer; the ORM row is loaded per use, not kept."""

    def __init__(self, officer: Officer) -> None:
        self.officer_id = officer.id
        self.public_id = officer.public_id
        self.username = officer.username
        self.display_name = officer.display_name
        self.role = officer.role
        self.unit_id = officer.unit_id

    def get_id(self) -> str:
        return self.public_id

    @property
    def holds_keys(self) -> bool:
        return self.role in KEY_HOLDING_ROLES

    @property
    def is_commander(self) -> bool:
        return self.role == Role.COMMANDER


def runtime() -> Runtime:
    return app_runtime()


def load_user(public_id: str) -> StaffUser | None:
    """The session's account, if it is active and the session began in its current epoch:
    disabling, recovery, a reset or a move raise the epoch and so end every session."""
    with runtime().sessions() as db:
        officer = db.scalars(
            select(Officer).where(Officer.public_id == public_id, Officer.active.is_(True))
        ).one_or_none()
        if officer is None or session.get(EPOCH_IN_SESSION) != officer.session_epoch:
            return None
        return StaffUser(officer)


def begin_session(officer: Officer) -> None:
    """After login: the epoch this session belongs to, and its id in the account's set (so
    that :func:`drop_sessions` can delete the server halves at once)."""
    session[EPOCH_IN_SESSION] = officer.session_epoch
    sid = getattr(session, "sid", None)
    if sid:
        redis = runtime().redis
        key = SESSION_IDS + officer.public_id
        redis.sadd(key, sid)
        redis.expire(key, 7 * 24 * 3600)


def drop_sessions(officer_public_id: str) -> None:
    """Delete every stored session of the account (their halves of the officer key too).
    :func:`load_user` refuses them anyway once the epoch was raised; this takes the data."""
    redis = runtime().redis
    key = SESSION_IDS + officer_public_id
    sids = [s.decode() if isinstance(s, bytes) else str(s) for s in redis.smembers(key)]
    if sids:
        redis.delete(*[SESSION_PREFIX + sid for sid in sids])
    redis.delete(key)


def staff() -> StaffUser:
    user = current_user._get_current_object()
    if not isinstance(user, StaffUser):
        raise Forbidden()
    return user


def keep_officer_key(response: Response, officer: Officer, key: PrivateKey, secret: bytes) -> None:
    """Put the server half in the session and the cookie half on ``response``."""
    session[KEY_IN_SESSION] = base64.b64encode(
        OFFICER_KEY_SESSION_WRAP.wrap(key, secret, officer_public_id=officer.public_id)
    ).decode()
    config = runtime().config
    response.set_cookie(
        UNLOCK_COOKIE,
        base64.urlsafe_b64encode(secret).decode(),
        httponly=True,
        samesite="Lax",
        secure=config.behind_tls,
        max_age=None,  # a browser-session cookie; the server half expires on idle anyway
    )


def forget_officer_key(response: Response) -> None:
    session.pop(KEY_IN_SESSION, None)
    response.delete_cookie(UNLOCK_COOKIE)


def officer_key() -> PrivateKey | None:
    """This request's unlocked officer key, or None (not a key holder, or the halves differ)."""
    if "officer_key" in g:
        return g.officer_key  # type: ignore[no-any-return]
    key = None
    wrapped = session.get(KEY_IN_SESSION)
    cookie = request.cookies.get(UNLOCK_COOKIE)
    user = current_user
    if wrapped and cookie and user.is_authenticated:
        try:
            key = OFFICER_KEY_SESSION_WRAP.unwrap(
                base64.b64decode(wrapped),
                base64.urlsafe_b64decode(cookie),
                officer_public_id=user.get_id(),
            )
        except (WrongSecret, ValueError, binascii.Error):
            key = None
    g.officer_key = key
    return key


def unit_keys(db: object) -> dict[int, PrivateKey]:
    """Every unit key version the officer's key chain opens (cached for the request)."""
    if "unit_keys" in g:
        return g.unit_keys  # type: ignore[no-any-return]
    from sqlalchemy.orm import Session

    assert isinstance(db, Session)  # noqa: S101 - a programming error, not input  # nosec B101
    key = officer_key()
    user = staff()
    opened: dict[int, PrivateKey] = {}
    if key is not None and user.holds_keys:
        officer = db.get_one(Officer, user.officer_id)
        opened = unit_keys_of(db, officer, key)
    g.unit_keys = opened
    return opened
