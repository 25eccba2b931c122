"""``tipline zalo …`` (CONTRACT.md): the OAs' tokens and status, and the informant's side of
the simulator (``send``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import httpx

from tipline.cli.context import runtime
from tipline.config import DEMO_ZALO_APP_ID, DEMO_ZALO_OA_SECRET_KEY, with_file_settings
from tipline.zalo.sender import (
    DEFAULT_STICKER,
    UploadedMedia,
    build_bare_event,
    build_event,
    build_oa_reply,
    build_withdraw,
    fail_downloads,
    post_event,
    record_interaction,
    upload_media,
)


def _location(value: str) -> tuple[float, float]:
    try:
        lat_text, lon_text = value.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise click.BadParameter("expected LAT,LON, e.g. 10.7642,106.6564") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise click.BadParameter("latitude or longitude out of range")
    return lat, lon


def _is_demo(to: str, client: httpx.Client) -> bool:
    """Whether ``to`` is a `tipline demo` (its simulator is mounted on the same port)."""
    try:
        return client.get(to.rstrip("/") + "/_sim/messages", timeout=5.0).status_code == 200
    except httpx.HTTPError:
        return False


def signing_values(to: str, client: httpx.Client) -> tuple[str, str]:
    """The app id and OA secret key to sign with: ``ZALO_APP_ID`` and ``ZALO_OA_SECRET_KEY``
    (or their ``_FILE`` forms, as the services read them); the demo's values only when both
    are unset and ``to`` is a `tipline demo`. Anything else is refused: a signature with the
    demo secret is one no real Tipline accepts, and one a misconfigured one would."""
    try:
        env = with_file_settings(dict(os.environ), ("ZALO_APP_ID", "ZALO_OA_SECRET_KEY"))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    app_id, secret = env.get("ZALO_APP_ID", ""), env.get("ZALO_OA_SECRET_KEY", "")
    if app_id and secret:
        return app_id, secret
    if not app_id and not secret and _is_demo(to, client):
        return DEMO_ZALO_APP_ID, DEMO_ZALO_OA_SECRET_KEY
    raise click.ClickException(
        "set ZALO_APP_ID and ZALO_OA_SECRET_KEY (or ZALO_APP_ID_FILE and "
        "ZALO_OA_SECRET_KEY_FILE) to the values the target verifies with; the demo's are "
        f"used only against `tipline demo`, and {to} is not one"
    )


@click.group("zalo")
def zalo() -> None:
    """Zalo OAs: tokens and status; the simulator's informant (send)."""


@zalo.command("set-tokens")
@click.argument("oa_id")
def set_tokens(oa_id: str) -> None:
    """Store OA_ID's tokens, read from stdin: the access token, then the refresh token.

    For a pair from the API Explorer of Zalo's developer console. The pair is sealed to the
    relay key (this process needs only its public half) and the next scheduled refresh, within
    ten minutes, replaces it, which also proves the refresh token works. Audited as the system.
    """
    from tipline.zalo.accounts import ConnectError, read_token_pair
    from tipline.zalo.accounts import set_tokens as store

    text = sys.stdin.read(2 * 2048 + 16)
    try:
        pair = read_token_pair(text)
        store(runtime(), oa_id, pair)
    except ConnectError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"OA {oa_id}: tokens stored (sealed); the next scheduled refresh renews them")


@zalo.command("oa-status")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
def oa_status(as_json: bool) -> None:
    """Each OA: its unit, token state (ok, missing, expiring, error), the access token's
    expiry, the last webhook event, the last send or refresh error."""
    from tipline.zalo.accounts import oa_statuses

    with runtime().sessions() as session:
        found = oa_statuses(session)
    if as_json:
        click.echo(json.dumps([status.as_json() for status in found], ensure_ascii=False))
        return
    for status in found:
        row = status.as_json()
        click.echo(
            f"{row['oa_id']:<20} {row['unit']:<14} {row['token_state']:<9}"
            f" expires {row['expires_at'] or '-'}  webhook {row['last_webhook_at'] or '-'}"
            + (f"  error: {row['last_error']}" if row["last_error"] else "")
        )


CONTENT = (
    "--text", "--image", "--file", "--location", "--link", "--card", "--sticker", "--gif",
    "--audio", "--video", "--admin-reply", "--withdraw", "--event",
)
Media = click.Path(exists=True, dir_okay=False, path_type=Path)


def _card(value: str) -> tuple[str, str]:
    name, sep, phone = value.rpartition(",")
    if not sep or not name.strip() or not phone.strip():
        raise click.BadParameter("expected NAME,PHONE, e.g. 'Trần Văn Bảy,0912345678'")
    return name.strip(), phone.strip()


@zalo.command("send")
@click.option("--to", "to", required=True, help="Base URL of a running Tipline.")
@click.option("--oa", "oa_id", required=True, help="The OA the informant writes to.")
@click.option("--user", "user_id", required=True,
              help="The informant's OA-scoped user id (with --anonymous: the visitor's id).")
@click.option("--text", "text", default=None)
@click.option("--image", "image", type=Media)
@click.option("--file", "file", type=Media)
@click.option("--location", "location", default=None, metavar="LAT,LON")
@click.option("--link", "link", default=None, metavar="URL",
              help="A link (user_send_link); --description captions it.")
@click.option("--description", "description", default="", help="The caption of --link.")
@click.option("--card", "card", default=None, metavar="NAME,PHONE",
              help="A contact card (user_send_business_card).")
@click.option("--sticker", "sticker", is_flag=False, flag_value=DEFAULT_STICKER, default=None,
              metavar="[ID]", help="A sticker (its id optional).")
@click.option("--gif", "gif", type=Media)
@click.option("--audio", "audio", type=Media, help="A voice message (Zalo's are .amr).")
@click.option("--video", "video", type=Media)
@click.option("--admin-reply", "admin_reply", default=None, metavar="TEXT",
              help="oa_send_text from --oa to --user, typed by an OA admin in Zalo's console.")
@click.option("--withdraw", "withdraw", is_flag=True,
              help="user_withdraw: the user asks the OA's partners to delete their data.")
@click.option("--event", "event_name", default=None, metavar="NAME",
              help="An event with only this name (a console's test delivery, an unknown event).")
@click.option("--quote", "quote", default=None, metavar="MSG_ID",
              help="The message this one replies to (quote_msg_id).")
@click.option("--msg-id", "msg_id", default=None, help="Zalo's msg_id (default: random).")
@click.option("--anonymous", "conversation", default=None, metavar="CONVERSATION_ID",
              help="Write from the OA's web chat, without a Zalo login (anonymous_send_*).")
@click.option("--sim", "sim", default=None, metavar="URL",
              help="Base URL of the simulator, when it runs as a process of its own "
              "(`tipline zalo simulator`): media and interactions go there. Default: --to.")
@click.option("--timestamp", "timestamp", type=int, default=None, metavar="MS",
              help="The event's time, epoch milliseconds (default now).")
@click.option("--cdn-host", "cdn_host", default=None, metavar="HOST",
              help="The CDN host the simulator serves the file from (default by kind: "
                   "*.zdn.vn, file-stal-1.dlfl.vn for files, video-stal-1.dlmd.me for videos).")
@click.option("--fail-downloads", "fail_count", type=click.IntRange(0, 100), default=0,
              metavar="N", help="The simulated CDN fails the next N downloads (HTTP 503).")
def send(
    to: str,
    oa_id: str,
    user_id: str,
    text: str | None,
    image: Path | None,
    file: Path | None,
    location: str | None,
    link: str | None,
    description: str,
    card: str | None,
    sticker: str | None,
    gif: Path | None,
    audio: Path | None,
    video: Path | None,
    admin_reply: str | None,
    withdraw: bool,
    event_name: str | None,
    quote: str | None,
    msg_id: str | None,
    conversation: str | None,
    sim: str | None,
    timestamp: int | None,
    cdn_host: str | None,
    fail_count: int,
) -> None:
    """Post one correctly signed Zalo event to <to>/zalo/webhook.

    Images, files, GIFs, audio and video are first uploaded to <to>/_sim/media, the
    simulator's stand-in for Zalo's CDN, and the event carries their URL. An event in which
    the user interacts with the OA is also reported to <to>/_sim/interactions, so that the
    simulator's reply windows count from it as Zalo's do. Exits non-zero unless Tipline
    answers 2xx.
    """
    given = [text, image, file, location, link, card, sticker, gif, audio, video, admin_reply,
             withdraw or None, event_name]
    if sum(x is not None for x in given) != 1:
        raise click.UsageError("give exactly one of " + ", ".join(CONTENT))
    simulator = sim or to
    try:
        with httpx.Client(timeout=30.0) as client:
            app_id, oa_secret = signing_values(to, client)

            def uploaded(path: Path | None, kind: str) -> UploadedMedia | None:
                if path is None:
                    return None
                return upload_media(simulator, path, kind=kind, host=cdn_host, client=client)

            if fail_count:
                fail_downloads(simulator, fail_count, client=client)

            if withdraw:
                raw = build_withdraw(oa_id, user_id, app_id=app_id, timestamp_ms=timestamp)
            elif admin_reply is not None:
                raw = build_oa_reply(oa_id, user_id, admin_reply, app_id=app_id,
                                     timestamp_ms=timestamp, msg_id=msg_id)
            elif event_name is not None:
                raw = build_bare_event(event_name, app_id=app_id, timestamp_ms=timestamp)
            else:
                try:
                    raw = build_event(
                        oa_id,
                        user_id,
                        text=text,
                        image=uploaded(image, "image"),
                        file=uploaded(file, "file"),
                        location=_location(location) if location is not None else None,
                        link=(link, description) if link is not None else None,
                        card=_card(card) if card is not None else None,
                        sticker=sticker,
                        gif=uploaded(gif, "gif"),
                        audio=uploaded(audio, "audio"),
                        video=uploaded(video, "video"),
                        quote_msg_id=quote,
                        anonymous=conversation,
                        app_id=app_id,
                        timestamp_ms=timestamp,
                        msg_id=msg_id,
                    )
                except ValueError as exc:
                    raise click.UsageError(str(exc)) from None
            record_interaction(simulator, raw, client=client)
            response = post_event(to, raw, app_id=app_id, oa_secret_key=oa_secret, client=client)
    except httpx.HTTPError as exc:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"HTTP {response.status_code}")
    click.echo(response.text.rstrip())
    if not response.is_success:
        raise SystemExit(1)


@zalo.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9100, show_default=True, type=int)
@click.option("--data-dir", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Where the simulator keeps the tokens it issued and the calls it received.")
def simulator(host: str, port: int, data_dir: Path) -> None:
    """Zalo's servers, simulated, as a process of their own: the OA API (sends are recorded,
    ``GET /_sim/messages`` lists them), OAuth, the media "CDN". For a smoke test of a
    production install without real Zalo: point ZALO_API_BASE and ZALO_OAUTH_BASE at
    ``http://HOST:PORT/_sim`` (docs/deploy.md, "Smoke test without Zalo"). Never in
    production."""
    from tipline.zalo.simulator import serve

    click.echo(f"Zalo simulator on http://{host}:{port}/_sim (data in {data_dir})")
    serve(host, port, data_dir)


@zalo.command("simulator-tokens")
@click.argument("oa_id")
@click.option("--data-dir", "data_dir", required=True, type=click.Path(path_type=Path))
def simulator_tokens(oa_id: str, data_dir: Path) -> None:
    """Print an access token and a refresh token the simulator issued to OA_ID (two lines),
    as Zalo's API Explorer gives them: pipe them into `tipline zalo set-tokens OA_ID`."""
    from tipline.zalo.simulator import issue_tokens

    access, refresh, _expires = issue_tokens(data_dir, oa_id)
    click.echo(access)
    click.echo(refresh)
