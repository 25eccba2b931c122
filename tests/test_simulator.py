"""The Zalo simulator: fake OA API and OAuth, recorded calls, faults, media, and the sender."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from werkzeug.serving import WSGIRequestHandler, make_server

from keys import new_pkce_verifier, pkce_challenge
from tests.conftest import APP_ID, APP_SECRET, OA_SECRET
from tests.databases import every_value
from tipline.cli.zalo import zalo
from tipline.runtime import Runtime
from tipline.zalo.sender import (
    UploadedMedia,
    build_event,
    post_event,
    signature_header,
    user_id_by_app,
)
from tipline.zalo.simulator import CODE_TTL, db_path, issue_code, issue_tokens

OA_ID = "3886132808788086451"
USER_ID = "2468458835296197922"


class UnderscoreHeaders(WSGIRequestHandler):
    """Keeps headers like ``access_token`` and ``secret_key``, which Zalo's API uses.

    Werkzeug's server (and gunicorn's default ``header_map=drop``) silently drops header
    names with underscores; Zalo's servers do not, so the fake must see them.
    """

    def make_environ(self) -> Any:
        environ = super().make_environ()
        for key, value in self.headers.items():
            if "_" in key:
                environ["HTTP_" + key.upper().replace("-", "_")] = value
        return environ


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yield its base URL."""
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=UnderscoreHeaders
    )
    # shutdown() waits for the loop's next look at its flag: 0.5 s by default, in every test.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    with live_server(app) as url:
        yield url


def send(client: FlaskClient, token: str, body: Any, path: str = "/_sim/v3.0/oa/message/cs") -> Any:
    response = client.post(path, headers={"access_token": token}, json=body)
    assert response.status_code == 200  # Zalo answers errors with HTTP 200 too
    return response.get_json()


def text_body(text: str = "Chúng tôi đã nhận tin báo.", user_id: str = USER_ID) -> dict[str, Any]:
    return {"recipient": {"user_id": user_id}, "message": {"text": text}}


def refresh(client: FlaskClient, refresh_token: str, secret: str = APP_SECRET) -> Any:
    response = client.post(
        "/_sim/v4/oa/access_token",
        headers={"secret_key": secret},
        data={"refresh_token": refresh_token, "app_id": APP_ID, "grant_type": "refresh_token"},
    )
    assert response.status_code == 200
    return response.get_json()


# --- OA API send endpoints -------------------------------------------------------------


def test_send_ok_answers_like_zalo_and_is_recorded(client: FlaskClient, config: Any) -> None:
    access, _, expires_in = issue_tokens(config.data_dir, OA_ID)
    assert expires_in == 90_000
    answer = send(client, access, text_body())
    assert answer["error"] == 0 and answer["message"] == "Success"
    assert re.fullmatch(r"[0-9a-f]{20}", answer["data"]["message_id"])
    assert answer["data"]["user_id"] == USER_ID
    assert re.fullmatch(r"\d{13}", answer["data"]["sent_time"])
    calls = client.get("/_sim/messages").get_json()
    assert len(calls) == 1
    call = calls[0]
    assert call["oa_id"] == OA_ID and call["user_id"] == USER_ID
    assert call["text"] == "Chúng tôi đã nhận tin báo."
    assert call["status"] == "ok" and call["error"] == 0
    assert call["message_id"] == answer["data"]["message_id"]
    assert call["time"].startswith("20")


def test_anonymous_send_uses_v2_and_conversation(client: FlaskClient, config: Any) -> None:
    access, _, _ = issue_tokens(config.data_dir, OA_ID)
    body = {"recipient": {"conversation_id": "c-1", "anonymous_id": "a-1"},
            "message": {"text": "xin chào"}}
    answer = send(client, access, body, path="/_sim/v2.0/oa/message")
    assert answer["error"] == 0
    # The consultation endpoint does not reach anonymous web-chat visitors.
    assert send(client, access, body)["error"] == -201
    calls = client.get("/_sim/messages").get_json()
    assert calls[0]["endpoint"] == "v2.0/oa/message"
    assert calls[0]["conversation_id"] == "c-1" and calls[0]["anonymous_id"] == "a-1"


@pytest.mark.parametrize("token", ["", "not-a-token"])
def test_unknown_token_is_minus_216(client: FlaskClient, token: str) -> None:
    answer = send(client, token, text_body())
    assert answer["error"] == -216 and "data" not in answer
    assert client.get("/_sim/messages").get_json()[0]["status"] == "error"


def test_expired_token_is_minus_216(client: FlaskClient, config: Any) -> None:
    access, _, _ = issue_tokens(config.data_dir, OA_ID, access_ttl=-1)
    assert send(client, access, text_body())["error"] == -216


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"recipient": {"user_id": USER_ID}},
        {"recipient": {}, "message": {"text": "x"}},
        {"recipient": {"user_id": USER_ID}, "message": {"text": ""}},
        {"recipient": {"user_id": USER_ID}, "message": {"text": "x" * 2001}},
        [1, 2],
    ],
)
def test_malformed_send_is_minus_201(client: FlaskClient, config: Any, body: Any) -> None:
    access, _, _ = issue_tokens(config.data_dir, OA_ID)
    assert send(client, access, body)["error"] == -201


def test_faults_answer_the_next_valid_calls_in_order(client: FlaskClient, config: Any) -> None:
    access, _, _ = issue_tokens(config.data_dir, OA_ID)
    queued = client.post("/_sim/faults", json={"errors": [-230, -32]}).get_json()
    assert queued["pending"] == [-230, -32]
    # An invalid token does not consume a fault.
    assert send(client, "bad", text_body())["error"] == -216
    first = send(client, access, text_body())
    assert first["error"] == -230 and first["message"]
    assert send(client, access, text_body())["error"] == -32
    assert send(client, access, text_body())["error"] == 0
    client.post("/_sim/faults", json={"errors": [-213]})
    assert client.delete("/_sim/faults").get_json()["pending"] == []
    assert send(client, access, text_body())["error"] == 0


@pytest.mark.parametrize("body", [{}, {"errors": "x"}, {"errors": [1]}, {"errors": [True]}])
def test_bad_fault_requests_are_refused(client: FlaskClient, body: Any) -> None:
    assert client.post("/_sim/faults", json=body).status_code == 400


# --- OAuth ----------------------------------------------------------------------------


def test_refresh_rotates_and_is_single_use(client: FlaskClient, config: Any) -> None:
    old_access, old_refresh, _ = issue_tokens(config.data_dir, OA_ID)
    answer = refresh(client, old_refresh)
    assert set(answer) == {"access_token", "refresh_token", "expires_in"}
    assert answer["expires_in"] == "90000"  # a string, as Zalo sends it
    assert answer["refresh_token"] != old_refresh
    again = refresh(client, old_refresh)
    assert again["error"] < 0 and "access_token" not in again
    # The new pair works and belongs to the same OA.
    assert send(client, answer["access_token"], text_body())["error"] == 0
    assert client.get("/_sim/messages").get_json()[-1]["oa_id"] == OA_ID
    assert refresh(client, answer["refresh_token"])["access_token"]
    assert old_access  # access tokens are not revoked by a refresh; they expire


def test_token_endpoint_checks_secret_app_and_grant(client: FlaskClient, config: Any) -> None:
    _, refresh_token, _ = issue_tokens(config.data_dir, OA_ID)
    assert refresh(client, refresh_token, secret="wrong")["error"] < 0
    response = client.post(
        "/_sim/v4/oa/access_token", headers={"secret_key": APP_SECRET},
        data={"refresh_token": refresh_token, "app_id": "1", "grant_type": "refresh_token"},
    )
    assert response.get_json()["error"] < 0
    response = client.post(
        "/_sim/v4/oa/access_token", headers={"secret_key": APP_SECRET},
        data={"refresh_token": refresh_token, "app_id": APP_ID, "grant_type": "password"},
    )
    assert response.get_json()["error"] < 0
    # None of the refused requests used the refresh token up.
    assert "access_token" in refresh(client, refresh_token)


def test_authorization_code_is_single_use(client: FlaskClient, config: Any) -> None:
    code = issue_code(config.data_dir, OA_ID)
    form = {"code": code, "app_id": APP_ID, "grant_type": "authorization_code"}
    headers = {"secret_key": APP_SECRET}
    answer = client.post("/_sim/v4/oa/access_token", headers=headers, data=form).get_json()
    assert answer["expires_in"] == "90000" and answer["access_token"]
    again = client.post("/_sim/v4/oa/access_token", headers=headers, data=form).get_json()
    assert again["error"] < 0


def exchange(client: FlaskClient, code: str, verifier: str | None = None) -> Any:
    form = {"code": code, "app_id": APP_ID, "grant_type": "authorization_code"}
    if verifier is not None:
        form["code_verifier"] = verifier
    response = client.post(
        "/_sim/v4/oa/access_token", headers={"secret_key": APP_SECRET}, data=form
    )
    assert response.status_code == 200
    return response.get_json()


def consent_query(**extra: str) -> dict[str, str]:
    verifier = extra.pop("verifier", "v" * 43)
    return {
        "app_id": APP_ID,
        "redirect_uri": "https://t.example/admin/zalo/callback",
        "code_challenge": pkce_challenge(verifier),
        "state": "trang-thai-1",
        **extra,
    }


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', html))


def test_consent_page_asks_the_oa_admin_then_redirects_with_code_oa_and_state(
    client: FlaskClient,
) -> None:
    verifier = new_pkce_verifier()
    page = client.get("/_sim/v4/oa/permission", query_string=consent_query(verifier=verifier))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="approve"' in html and APP_ID in html
    fields = hidden_fields(html)
    assert fields["state"] == "trang-thai-1" and fields["app_id"] == APP_ID
    approved = client.post("/_sim/v4/oa/permission", data={**fields, "oa_id": OA_ID})
    assert approved.status_code == 302
    location = httpx.URL(approved.headers["Location"])
    assert (location.host, location.path) == ("t.example", "/admin/zalo/callback")
    assert location.params["oa_id"] == OA_ID and location.params["state"] == "trang-thai-1"
    answer = exchange(client, location.params["code"], verifier)
    assert answer["access_token"] and answer["expires_in"] == "90000"
    # The code is single use.
    assert exchange(client, location.params["code"], verifier)["error"] < 0


def test_consent_page_names_the_oa_it_was_asked_for(client: FlaskClient) -> None:
    page = client.get("/_sim/v4/oa/permission", query_string=consent_query(oa_id=OA_ID))
    assert f'name="oa_id" value="{OA_ID}"' in page.get_data(as_text=True)


@pytest.mark.parametrize(
    "change",
    [
        {"app_id": "1"},
        {"redirect_uri": "javascript:alert(1)"},
        {"redirect_uri": ""},
    ],
)
def test_consent_page_refuses_a_bad_request(client: FlaskClient, change: dict[str, str]) -> None:
    asked = client.get("/_sim/v4/oa/permission", query_string=consent_query(**change))
    assert asked.status_code == 200 and asked.get_json()["error"] < 0
    fields = {**consent_query(), **change, "oa_id": OA_ID}
    approved = client.post("/_sim/v4/oa/permission", data=fields)
    assert approved.status_code == 200 and approved.get_json()["error"] < 0


def test_approval_needs_an_oa_id_of_digits(client: FlaskClient) -> None:
    for oa_id in ("", "abc", "1" * 40):
        approved = client.post("/_sim/v4/oa/permission", data={**consent_query(), "oa_id": oa_id})
        assert approved.status_code == 200 and approved.get_json()["error"] < 0


def test_the_token_endpoint_checks_the_pkce_verifier(client: FlaskClient, config: Any) -> None:
    verifier = new_pkce_verifier()
    code = issue_code(config.data_dir, OA_ID, challenge=pkce_challenge(verifier))
    assert exchange(client, code)["error"] < 0  # no verifier
    assert exchange(client, code, new_pkce_verifier())["error"] < 0  # another one
    assert exchange(client, code, verifier[:-1])["error"] < 0
    # A refused verifier does not use the code up: the right one still gets the tokens.
    assert exchange(client, code, verifier)["access_token"]


def test_an_authorization_code_lives_ten_minutes(client: FlaskClient, config: Any) -> None:
    assert CODE_TTL == 600
    expired = issue_code(config.data_dir, OA_ID, ttl=0)
    answer = exchange(client, expired)
    assert answer["error"] < 0 and "access_token" not in answer
    assert exchange(client, issue_code(config.data_dir, OA_ID))["access_token"]


# --- state: shared between processes, never in Tipline's stores ------------------------


def test_state_is_shared_with_other_processes(client: FlaskClient, config: Any) -> None:
    """A token minted by another process (as `tipline demo` does) works in this one."""
    code = (
        "import sys; from tipline.zalo.simulator import issue_tokens; "
        "print(issue_tokens(sys.argv[1], sys.argv[2])[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(config.data_dir), OA_ID],
        check=True, capture_output=True, text=True, timeout=60,
    )
    assert send(client, done.stdout.strip(), text_body())["error"] == 0


def test_state_is_not_in_tiplines_database_or_redis(
    client: FlaskClient, config: Any, runtime: Runtime, redis: Redis
) -> None:
    access, _, _ = issue_tokens(config.data_dir, OA_ID)
    assert send(client, access, text_body())["error"] == 0
    assert db_path(config.data_dir) == config.data_dir / "zalo-simulator" / "sim.db"
    assert db_path(config.data_dir).exists()
    dump = "\n".join(str(value) for value in every_value(config.database_url))
    assert dump and USER_ID not in dump and access not in dump
    for key in redis.scan_iter():
        assert USER_ID.encode() not in key
        if redis.type(key) == b"string":
            assert USER_ID.encode() not in (redis.get(key) or b"")


# --- media: the stand-in for Zalo's CDN ------------------------------------------------


def test_media_upload_and_download(client: FlaskClient) -> None:
    data = b"%PDF-1.4 fake"
    response = client.post(
        "/_sim/media", data={"file": (io.BytesIO(data), "bang-chung.pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["size"] == len(data) and body["name"] == "bang-chung.pdf"
    path = httpx.URL(body["url"]).path
    # A file on Zalo's file CDN, which redirects to flchat.vn (zalo.md §8.2).
    assert path.startswith("/_sim/cdn/file-stal-1.dlfl.vn/")
    redirect = client.get(path)
    assert redirect.status_code == 302
    assert "/_sim/cdn/file-stal-1.flchat.vn/" in redirect.headers["Location"]
    fetched = client.get(path, follow_redirects=True)
    assert fetched.status_code == 200 and fetched.data == data
    assert client.get(f"/_sim/media/{body['id']}").data == data  # the older address too
    assert fetched.mimetype == "application/pdf"
    assert client.get("/_sim/media/nope").status_code == 404
    assert client.post("/_sim/media", data={}).status_code == 400


# --- the sender: signed events, and `tipline zalo send` --------------------------------


def test_signature_matches_the_research_test_vector() -> None:
    raw = (
        b'{"app_id":"3608465248940903967","sender":{"id":"2468458835296197922"},'
        b'"user_id_by_app":"5521772797175877301","recipient":{"id":"3886132808788086451"},'
        b'"event_name":"user_send_text","message":{"text":"xin chao","msg_id":'
        b'"96d3cdf3af150460909a"},"timestamp":"1718000100000"}'
    )
    assert len(raw) == 270
    header = signature_header(raw, app_id="3608465248940903967", oa_secret_key="TEST_OA_SECRET_KEY")
    assert header == "mac=a1b32464208d253e662db0e784f027a69afdce0b9bf22d77ca41c481675e1359"


def test_build_event_shapes() -> None:
    event = json.loads(build_event(OA_ID, USER_ID, text="Có người buôn ma túy", app_id=APP_ID))
    assert event["event_name"] == "user_send_text"
    assert event["app_id"] == APP_ID
    assert event["sender"] == {"id": USER_ID} and event["recipient"] == {"id": OA_ID}
    assert re.fullmatch(r"\d{13}", event["timestamp"])
    assert re.fullmatch(r"[0-9a-f]{20}", event["message"]["msg_id"])
    assert event["user_id_by_app"] == user_id_by_app(APP_ID, USER_ID) != USER_ID
    assert re.fullmatch(r"\d{19}", event["user_id_by_app"])

    located = json.loads(build_event(OA_ID, USER_ID, location=(10.7642473, 106.6564314)))
    assert located["event_name"] == "user_send_location"
    coordinates = located["message"]["attachments"][0]["payload"]["coordinates"]
    assert coordinates == {"latitude": "10.7642473", "longitude": "106.6564314"}

    media = UploadedMedia(url="http://x/_sim/media/1", name="a.pdf", size=3, checksum="c",
                          type="pdf")
    filed = json.loads(build_event(OA_ID, USER_ID, file=media))
    payload = filed["message"]["attachments"][0]["payload"]
    assert filed["event_name"] == "user_send_file"
    assert payload == {"url": media.url, "name": "a.pdf", "size": "3", "type": "pdf",
                       "checksum": "c"}
    imaged = json.loads(build_event(OA_ID, USER_ID, image=media))
    assert imaged["message"]["attachments"][0] == {
        "type": "image", "payload": {"thumbnail": media.url, "url": media.url}}

    with pytest.raises(ValueError, match="exactly one"):
        build_event(OA_ID, USER_ID)
    with pytest.raises(ValueError, match="exactly one"):
        build_event(OA_ID, USER_ID, text="a", location=(1.0, 2.0))


def test_post_event_is_accepted_by_the_webhook(base_url: str) -> None:
    raw = build_event(OA_ID, USER_ID, text="Có người buôn ma túy ở hẻm 12", app_id=APP_ID)
    response = post_event(base_url, raw, app_id=APP_ID, oa_secret_key=OA_SECRET)
    assert response.status_code == 200 and response.json()["ok"] is True
    # The same bytes again are a duplicate delivery, still acknowledged.
    again = post_event(base_url, raw, app_id=APP_ID, oa_secret_key=OA_SECRET)
    assert again.json().get("duplicate") is True
    forged = post_event(base_url, raw, app_id=APP_ID, oa_secret_key="wrong")
    assert forged.status_code == 401


def cli_env() -> dict[str, str]:
    return {"ZALO_APP_ID": APP_ID, "ZALO_OA_SECRET_KEY": OA_SECRET}


@pytest.mark.parametrize(
    "content",
    [
        ["--text", "Có người buôn bán ma túy ở hẻm 12"],
        ["--location", "10.7642473,106.6564314"],
    ],
)
def test_cli_send(base_url: str, content: list[str]) -> None:
    result = CliRunner().invoke(
        zalo, ["send", "--to", base_url, "--oa", OA_ID, "--user", USER_ID, *content],
        env=cli_env(),
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("HTTP 200")


@pytest.mark.parametrize("option", ["--image", "--file"])
def test_cli_send_media_uploads_first(base_url: str, tmp_path: Path, option: str) -> None:
    name = "anh.jpg" if option == "--image" else "bang-chung.pdf"
    path = tmp_path / name
    path.write_bytes(b"\xff\xd8\xff fake jpeg" if option == "--image" else b"%PDF-1.4 x")
    result = CliRunner().invoke(
        zalo, ["send", "--to", base_url, "--oa", OA_ID, "--user", USER_ID, option, str(path)],
        env=cli_env(),
    )
    assert result.exit_code == 0, result.output
    assert "HTTP 200" in result.output


def test_cli_send_needs_exactly_one_content(base_url: str) -> None:
    result = CliRunner().invoke(
        zalo, ["send", "--to", base_url, "--oa", OA_ID, "--user", USER_ID], env=cli_env()
    )
    assert result.exit_code == 2 and "exactly one" in result.output
    result = CliRunner().invoke(
        zalo, ["send", "--to", base_url, "--oa", OA_ID, "--user", USER_ID, "--location", "x"],
        env=cli_env(),
    )
    assert result.exit_code == 2


def test_cli_send_exits_non_zero_on_refusal(base_url: str) -> None:
    result = CliRunner().invoke(
        zalo, ["send", "--to", base_url, "--oa", OA_ID, "--user", USER_ID, "--text", "x"],
        env={"ZALO_APP_ID": APP_ID, "ZALO_OA_SECRET_KEY": "wrong"},
    )
    assert result.exit_code == 1
    assert result.output.startswith("HTTP 401")


def test_cli_send_exits_non_zero_when_unreachable() -> None:
    result = CliRunner().invoke(
        zalo, ["send", "--to", "http://127.0.0.1:9", "--oa", OA_ID, "--user", USER_ID,
               "--text", "x"],
        env=cli_env(),
    )
    assert result.exit_code == 2


def test_missing_credential_headers_are_explained_in_the_log(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Servers that drop underscore headers (gunicorn's default) get a hint, not a mystery."""
    response = client.post("/_sim/v3.0/oa/message/cs", json=text_body())
    assert response.get_json()["error"] == -216
    response = client.post(
        "/_sim/v4/oa/access_token",
        data={"refresh_token": "r", "app_id": APP_ID, "grant_type": "refresh_token"},
    )
    assert response.get_json()["error"] < 0
    assert caplog.text.count("--forwarder-headers") == 2
