"""The scheduled token refresh: every OA's tokens renewed well before they expire, once.

A quiet OA (no reply to send) used to refresh its tokens never, and lost its grant when its
refresh token died three months later. The workers now refresh every OA whose access token
expires within five hours (tipline.zalo.tokens.refresh_due_tokens, every ten minutes), under
the OA's Redis lock, against the simulator's single-use, rotating refresh tokens.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.conftest import COMMUNE_OA, PROVINCE_OA
from tipline.jobs.worker import OA_REFRESH_LOCK, token_refresh_loop, token_refresh_once
from tipline.models import OfficialAccount, utcnow
from tipline.runtime import Runtime
from tipline.zalo.client import RefreshFailedError, TokenPair, ZaloClient
from tipline.zalo.simulator import db_path, issue_tokens
from tipline.zalo.tokens import (
    REFUSED_RETRY_AFTER,
    SCHEDULED_WINDOW,
    lock_name,
    open_tokens,
    refresh_due_tokens,
    refresh_if_due,
    store_tokens,
)

HOURS = 3600


def connect(runtime: Runtime, oa_id: str, *, access_ttl: int) -> TokenPair:
    """Give ``oa_id`` a fresh pair from the simulator whose access token lives ``access_ttl``."""
    pair = TokenPair(*issue_tokens(runtime.config.data_dir, oa_id, access_ttl=access_ttl))
    store(runtime, oa_id, pair)
    return pair


def store(runtime: Runtime, oa_id: str, pair: TokenPair) -> None:
    with runtime.sessions() as session, session.begin():
        oa = session.scalars(select(OfficialAccount).where(OfficialAccount.oa_id == oa_id)).one()
        store_tokens(session, oa, pair, runtime.config.secrets.relay_public)


def row(runtime: Runtime, oa_id: str) -> OfficialAccount:
    with runtime.sessions() as session:
        return session.scalars(
            select(OfficialAccount).where(OfficialAccount.oa_id == oa_id)
        ).one()


def stored(runtime: Runtime, oa_id: str) -> TokenPair:
    pair = open_tokens(row(runtime, oa_id), runtime.config.secrets.relay_key)
    assert pair is not None
    return pair


def spent(runtime: Runtime, refresh_token: str) -> bool:
    """Whether the simulator (Zalo) has seen ``refresh_token`` used."""
    with sqlite3.connect(db_path(runtime.config.data_dir)) as conn:
        found = conn.execute(
            "SELECT used FROM tokens WHERE token = ? AND kind = 'refresh'", (refresh_token,)
        ).fetchone()
    assert found is not None, "the simulator never issued this refresh token"
    return bool(found[0])


def spent_for(runtime: Runtime, oa_id: str) -> int:
    with sqlite3.connect(db_path(runtime.config.data_dir)) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM tokens WHERE oa_id = ? AND kind = 'refresh' AND used = 1",
                (oa_id,),
            ).fetchone()[0]
        )


@pytest.fixture
def zalo(runtime: Runtime, sim: str) -> ZaloClient:
    return ZaloClient.from_config(runtime.config)


def test_a_token_expiring_soon_is_refreshed_and_a_fresh_one_is_not(
    runtime: Runtime, units: dict[str, str], zalo: ZaloClient
) -> None:
    soon = connect(runtime, PROVINCE_OA, access_ttl=2 * HOURS)
    fresh = connect(runtime, COMMUNE_OA, access_ttl=25 * HOURS)
    generations = {oa: row(runtime, oa).token_generation for oa in (PROVINCE_OA, COMMUNE_OA)}

    assert refresh_due_tokens(runtime, zalo) == [PROVINCE_OA]

    renewed = stored(runtime, PROVINCE_OA)
    assert renewed.access_token != soon.access_token
    assert renewed.refresh_token != soon.refresh_token
    province = row(runtime, PROVINCE_OA)
    assert province.token_generation == generations[PROVINCE_OA] + 1
    assert province.access_expires_at is not None
    assert province.access_expires_at > utcnow() + timedelta(hours=24)
    assert province.tokens_updated_at is not None and province.token_error is None
    # Zalo's refresh tokens are single use: the old one is dead, the new one works.
    assert spent(runtime, soon.refresh_token)
    with pytest.raises(RefreshFailedError):
        zalo.refresh(soon.refresh_token)
    # The fresh OA was left alone: same pair, its refresh token unspent.
    kept = stored(runtime, COMMUNE_OA)
    assert (kept.access_token, kept.refresh_token) == (fresh.access_token, fresh.refresh_token)
    assert not spent(runtime, fresh.refresh_token)
    assert row(runtime, COMMUNE_OA).token_generation == generations[COMMUNE_OA]
    # Nothing is due any more.
    assert refresh_due_tokens(runtime, zalo) == []
    assert SCHEDULED_WINDOW == timedelta(hours=5)


def test_an_expired_access_token_is_refreshed_too(
    runtime: Runtime, units: dict[str, str], zalo: ZaloClient
) -> None:
    """An OA whose worker was down past the access token's 25 hours still has three months."""
    old = connect(runtime, PROVINCE_OA, access_ttl=0)
    assert PROVINCE_OA in refresh_due_tokens(runtime, zalo)
    assert spent(runtime, old.refresh_token)
    assert stored(runtime, PROVINCE_OA).access_token != old.access_token


def test_two_workers_racing_spend_the_refresh_token_once(
    runtime: Runtime, units: dict[str, str], sim: str
) -> None:
    old = connect(runtime, PROVINCE_OA, access_ttl=2 * HOURS)
    connect(runtime, COMMUNE_OA, access_ttl=25 * HOURS)
    before = row(runtime, PROVINCE_OA).token_generation
    start = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with ZaloClient.from_config(runtime.config) as client:
                start.wait(timeout=30)
                results.append(refresh_due_tokens(runtime, client))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(oa for found in results for oa in found) == [PROVINCE_OA]
    assert row(runtime, PROVINCE_OA).token_generation == before + 1
    assert spent(runtime, old.refresh_token)
    assert spent_for(runtime, PROVINCE_OA) == 1
    assert not spent(runtime, stored(runtime, PROVINCE_OA).refresh_token)


def test_a_worker_whose_list_is_stale_does_not_spend_the_new_token(
    runtime: Runtime, units: dict[str, str], zalo: ZaloClient
) -> None:
    connect(runtime, PROVINCE_OA, access_ttl=2 * HOURS)
    assert refresh_due_tokens(runtime, zalo) == [PROVINCE_OA]
    # Another worker listed the OA as due before that refresh; it reads the row again under
    # the lock and leaves the new pair alone.
    assert refresh_if_due(runtime, PROVINCE_OA, zalo) is False
    assert not spent(runtime, stored(runtime, PROVINCE_OA).refresh_token)


def test_an_oa_being_refreshed_by_another_worker_is_skipped(
    runtime: Runtime, units: dict[str, str], zalo: ZaloClient
) -> None:
    pair = connect(runtime, PROVINCE_OA, access_ttl=2 * HOURS)
    held = runtime.redis.lock(lock_name(PROVINCE_OA), timeout=60)
    assert held.acquire(blocking=False)
    try:
        assert refresh_due_tokens(runtime, zalo) == []
        assert not spent(runtime, pair.refresh_token)
    finally:
        held.release()
    assert refresh_due_tokens(runtime, zalo) == [PROVINCE_OA]


def test_a_refused_refresh_marks_the_oa_for_a_new_consent(
    runtime: Runtime, units: dict[str, str], zalo: ZaloClient
) -> None:
    connect(runtime, COMMUNE_OA, access_ttl=25 * HOURS)
    store(runtime, PROVINCE_OA, TokenPair("unknown-access", "unknown-refresh", 3600))
    assert refresh_due_tokens(runtime, zalo) == []
    province = row(runtime, PROVINCE_OA)
    assert province.token_error is not None and "re-consent" in province.token_error
    assert province.last_error == province.token_error and province.token_error_at is not None
    # Not tried again the same day: a person must act (a new consent clears the error).
    assert refresh_due_tokens(runtime, zalo) == []
    connect(runtime, PROVINCE_OA, access_ttl=2 * HOURS)
    province = row(runtime, PROVINCE_OA)
    assert province.token_error is None and province.token_error_at is None
    assert refresh_due_tokens(runtime, zalo) == [PROVINCE_OA]


def test_a_wrong_app_secret_strands_no_oa_for_good(
    runtime: Runtime, units: dict[str, str], sim: str
) -> None:
    """Zalo refuses every refresh while ZALO_APP_SECRET is wrong; the refresh tokens are not
    spent. Once the secret is fixed, the daily retry of refused OAs brings them back without a
    new consent from every OA's administrator."""
    pair = connect(runtime, PROVINCE_OA, access_ttl=2 * HOURS)
    connect(runtime, COMMUNE_OA, access_ttl=25 * HOURS)
    # This worker's ZALO_APP_SECRET has a typo (the simulator, Zalo, knows the right one).
    config = runtime.config
    with ZaloClient(
        api_base=config.zalo_api_base,
        oauth_base=config.zalo_oauth_base,
        app_id=config.zalo_app_id,
        app_secret="typo",
    ) as wrong:
        assert refresh_due_tokens(runtime, wrong) == []
    assert row(runtime, PROVINCE_OA).token_error is not None
    assert not spent(runtime, pair.refresh_token)
    with ZaloClient.from_config(runtime.config) as fixed:
        assert refresh_due_tokens(runtime, fixed) == []  # within the day: left for a person
        with runtime.sessions() as session, session.begin():
            oa = session.scalars(
                select(OfficialAccount).where(OfficialAccount.oa_id == PROVINCE_OA)
            ).one()
            assert oa.token_error_at is not None
            oa.token_error_at -= REFUSED_RETRY_AFTER  # a day has passed
        assert refresh_due_tokens(runtime, fixed) == [PROVINCE_OA]
    province = row(runtime, PROVINCE_OA)
    assert province.token_error is None and spent(runtime, pair.refresh_token)


def test_the_workers_make_one_pass_per_period_between_them(
    runtime: Runtime, units: dict[str, str], sim: str
) -> None:
    old = connect(runtime, PROVINCE_OA, access_ttl=2 * HOURS)
    assert token_refresh_once(runtime) is True
    assert spent(runtime, old.refresh_token)
    # Another worker (or this one, sooner than ten minutes later) finds the period's lock.
    again = connect(runtime, PROVINCE_OA, access_ttl=2 * HOURS)
    assert token_refresh_once(runtime) is False
    assert not spent(runtime, again.refresh_token)
    runtime.redis.delete(OA_REFRESH_LOCK)  # the period is over
    # A worker without the relay key's private half cannot open tokens: it leaves the round.
    keyless = runtime.config.with_overrides(
        secrets=dataclasses.replace(runtime.config.secrets, relay_private=None)
    )
    original = runtime.config
    # Nor does one of a server whose app secret is unset: Zalo would refuse every OA.
    for config in (keyless, original.with_overrides(zalo_app_secret="")):
        runtime.config = config
        try:
            assert token_refresh_once(runtime) is False
        finally:
            runtime.config = original
    assert not spent(runtime, again.refresh_token)
    assert row(runtime, PROVINCE_OA).token_error is None


def test_the_refresh_thread_of_a_worker_refreshes(
    runtime: Runtime, units: dict[str, str], sim: str
) -> None:
    old = connect(runtime, PROVINCE_OA, access_ttl=2 * HOURS)
    stop = threading.Event()
    thread = threading.Thread(target=token_refresh_loop, args=(runtime, stop), daemon=True)
    thread.start()
    try:
        for _ in range(600):  # the loop's first pass runs at once; wait for it, up to a minute
            if spent(runtime, old.refresh_token):
                break
            stop.wait(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert spent(runtime, old.refresh_token)
    assert stored(runtime, PROVINCE_OA).access_token != old.access_token
