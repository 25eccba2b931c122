"""``tipline zalo …`` (CONTRACT.md): the OAs' tokens and status, and the informant's side of
the simulator (``send``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import httpx

from tipline.cli.context import runtime
from tipline.zalo.sender import (
    DEFAULT_STICKER,
    UploadedMedia,
    app_id_from_env,
    build_bare_event,
    build_event,
    build_oa_reply,
    build_withdraw,
    oa_secret_from_env,
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
@click.option("--timestamp", "timestamp", type=int, default=None, metavar="MS",
              help="The event's time, epoch milliseconds (default now).")
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
    timestamp: int | None,
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
    app_id = app_id_from_env()
    try:
        with httpx.Client(timeout=30.0) as client:

            def uploaded(path: Path | None) -> UploadedMedia | None:
                return upload_media(to, path, client=client) if path else None

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
                        image=uploaded(image),
                        file=uploaded(file),
                        location=_location(location) if location is not None else None,
                        link=(link, description) if link is not None else None,
                        card=_card(card) if card is not None else None,
                        sticker=sticker,
                        gif=uploaded(gif),
                        audio=uploaded(audio),
                        video=uploaded(video),
                        quote_msg_id=quote,
                        anonymous=conversation,
                        app_id=app_id,
                        timestamp_ms=timestamp,
                        msg_id=msg_id,
                    )
                except ValueError as exc:
                    raise click.UsageError(str(exc)) from None
            record_interaction(to, raw, client=client)
            response = post_event(
                to, raw, app_id=app_id, oa_secret_key=oa_secret_from_env(), client=client
            )
    except httpx.HTTPError as exc:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"HTTP {response.status_code}")
    click.echo(response.text.rstrip())
    if not response.is_success:
        raise SystemExit(1)
