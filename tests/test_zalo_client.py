"""The OA API client against the simulator (in-process over WSGI), and its error mapping."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import APP_ID, APP_SECRET
from tipline.config import Config
from tipline.zalo.client import (
    MAX_TEXT,
    InvalidAddressError,
    RefreshFailedError,
    SendStatus,
    TextTooLongError,
    TokenPair,
    ZaloClient,
    ZaloUnavailableError,
    classify,
)
from tipline.zalo.simulator import issue_code, issue_tokens

OA_ID = "3886132808788086451"
USER_ID = "2468458835296197922"
USER = {"kind": "user", "user_id": USER_ID}
TEXT = "Cảm ơn bạn đã cung cấp thông tin"


def sim_client(app: Flask, *, app_secret: str = APP_SECRET) -> ZaloClient:
    return ZaloClient(
        api_base="http://tipline.test/_sim",
        oauth_base="http://tipline.test/_sim",
        app_id=APP_ID,
        app_secret=app_secret,
        transport=httpx.WSGITransport(app=app),
    )


@pytest.fixture
def zalo_client(app: Flask) -> Iterator[ZaloClient]:
    with sim_client(app) as client:
        yield client


@pytest.fixture
def tokens(config: Config) -> tuple[str, str, int]:
    return issue_tokens(config.data_dir, OA_ID)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (0, SendStatus.OK),
        (-216, SendStatus.TOKEN_INVALID),
        (-220, SendStatus.TOKEN_INVALID),
        (-230, SendStatus.WINDOW_CLOSED),
        (-232, SendStatus.WINDOW_CLOSED),
        (-213, SendStatus.UNREACHABLE),
        (-227, SendStatus.UNREACHABLE),
        (-244, SendStatus.UNREACHABLE),
        (-32, SendStatus.RATE_LIMITED),
        (-201, SendStatus.OTHER),
        (-240, SendStatus.OTHER),
    ],
)
def test_classify(code: int, status: SendStatus) -> None:
    assert classify(code) is status


def test_send_text_to_a_user(
    zalo_client: ZaloClient, tokens: tuple[str, str, int], client: FlaskClient
) -> None:
    result = zalo_client.send_text(tokens[0], USER, TEXT)
    assert result.ok and result.status is SendStatus.OK and result.error == 0
    assert result.message_id and len(result.message_id) == 20
    calls = client.get("/_sim/messages").get_json()
    assert [(c["endpoint"], c["user_id"], c["text"]) for c in calls] == [
        ("v3.0/oa/message/cs", USER_ID, TEXT)
    ]


def test_send_text_to_an_anonymous_visitor(
    zalo_client: ZaloClient, tokens: tuple[str, str, int], client: FlaskClient
) -> None:
    address = {"kind": "anonymous", "conversation_id": "conv-9", "anonymous_id": "anon-9"}
    assert zalo_client.send_text(tokens[0], address, TEXT).ok
    call = client.get("/_sim/messages").get_json()[0]
    assert call["endpoint"] == "v2.0/oa/message" and call["conversation_id"] == "conv-9"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (-216, SendStatus.TOKEN_INVALID),
        (-230, SendStatus.WINDOW_CLOSED),
        (-213, SendStatus.UNREACHABLE),
        (-32, SendStatus.RATE_LIMITED),
        (-201, SendStatus.OTHER),
    ],
)
def test_zalo_errors_are_classified(
    zalo_client: ZaloClient,
    tokens: tuple[str, str, int],
    client: FlaskClient,
    code: int,
    status: SendStatus,
) -> None:
    client.post("/_sim/faults", json={"errors": [code]})
    result = zalo_client.send_text(tokens[0], USER, TEXT)
    assert not result.ok and result.status is status and result.error == code
    assert result.reason.startswith(f"zalo {code}: ") and len(result.reason) <= 200
    assert result.message_id is None


def test_invalid_token(zalo_client: ZaloClient) -> None:
    assert zalo_client.send_text("nope", USER, TEXT).status is SendStatus.TOKEN_INVALID


def test_text_over_the_limit_is_refused_before_calling(
    zalo_client: ZaloClient, tokens: tuple[str, str, int], client: FlaskClient
) -> None:
    assert zalo_client.send_text(tokens[0], USER, "x" * MAX_TEXT).ok
    with pytest.raises(TextTooLongError):
        zalo_client.send_text(tokens[0], USER, "x" * (MAX_TEXT + 1))
    assert len(client.get("/_sim/messages").get_json()) == 1


@pytest.mark.parametrize(
    "address",
    [{}, {"kind": "user"}, {"kind": "anonymous", "conversation_id": "c"}, {"kind": "email"}],
)
def test_unusable_address(
    zalo_client: ZaloClient, tokens: tuple[str, str, int], address: dict[str, str]
) -> None:
    with pytest.raises(InvalidAddressError):
        zalo_client.send_text(tokens[0], address, TEXT)


def test_refresh_rotates(zalo_client: ZaloClient, tokens: tuple[str, str, int]) -> None:
    pair = zalo_client.refresh(tokens[1])
    assert isinstance(pair.expires_in, int) and pair.expires_in == 90_000
    assert pair.refresh_token != tokens[1]
    assert zalo_client.send_text(pair.access_token, USER, TEXT).ok
    with pytest.raises(RefreshFailedError) as refused:
        zalo_client.refresh(tokens[1])  # single use
    assert refused.value.error < 0
    assert tokens[1] not in str(refused.value)


def test_refresh_with_the_wrong_app_secret(app: Flask, tokens: tuple[str, str, int]) -> None:
    with sim_client(app, app_secret="wrong") as bad, pytest.raises(RefreshFailedError):
        bad.refresh(tokens[1])


def test_exchange_code(zalo_client: ZaloClient, config: Config) -> None:
    pair = zalo_client.exchange_code(issue_code(config.data_dir, OA_ID))
    assert pair.access_token and pair.refresh_token and pair.expires_in == 90_000


def test_token_pair_repr_hides_tokens() -> None:
    pair = TokenPair("ACCESS-SECRET", "REFRESH-SECRET", 10)
    assert "SECRET" not in repr(pair)


def _client_with(transport: httpx.BaseTransport) -> ZaloClient:
    return ZaloClient(api_base="http://z", oauth_base="http://z", app_id=APP_ID,
                      app_secret=APP_SECRET, transport=transport)


@pytest.mark.parametrize(
    "handler",
    [
        lambda request: httpx.Response(502, text="bad gateway"),
        lambda request: httpx.Response(200, text="<html>not json</html>"),
        lambda request: httpx.Response(200, json=[1, 2]),
    ],
)
def test_unusable_answers_are_transient(handler: Any) -> None:
    with _client_with(httpx.MockTransport(handler)) as zalo:
        with pytest.raises(ZaloUnavailableError):
            zalo.send_text("t", USER, TEXT)
        with pytest.raises(ZaloUnavailableError):
            zalo.refresh("r")


def test_connection_refused_is_transient() -> None:
    with ZaloClient(api_base="http://127.0.0.1:9", oauth_base="http://127.0.0.1:9",
                    app_id=APP_ID, app_secret=APP_SECRET, timeout=2.0) as zalo:
        with pytest.raises(ZaloUnavailableError):
            zalo.send_text("t", USER, TEXT)


def test_from_config_uses_configured_bases(config: Config) -> None:
    configured = config.with_overrides(zalo_api_base="http://a/_sim", zalo_oauth_base="http://o")
    with ZaloClient.from_config(configured) as zalo:
        assert zalo.api_base == "http://a/_sim" and zalo.oauth_base == "http://o"
        assert zalo.app_id == APP_ID


def test_nothing_secret_is_logged(
    zalo_client: ZaloClient,
    tokens: tuple[str, str, int],
    client: FlaskClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client.post("/_sim/faults", json={"errors": [-230]})
    zalo_client.send_text(tokens[0], USER, TEXT)
    zalo_client.send_text(tokens[0], USER, TEXT)
    pair = zalo_client.refresh(tokens[1])
    with pytest.raises(RefreshFailedError):
        zalo_client.refresh(tokens[1])
    assert caplog.records  # the client does log, just nothing secret
    for secret in (tokens[0], tokens[1], pair.access_token, pair.refresh_token, USER_ID, TEXT):
        assert secret not in caplog.text
