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
    app_id_from_env,
    build_event,
    oa_secret_from_env,
    post_event,
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


@zalo.command("send")
@click.option("--to", "to", required=True, help="Base URL of a running Tipline.")
@click.option("--oa", "oa_id", required=True, help="The OA the informant writes to.")
@click.option("--user", "user_id", required=True, help="The informant's OA-scoped user id.")
@click.option("--text", "text", default=None)
@click.option("--image", "image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--location", "location", default=None, metavar="LAT,LON")
def send(
    to: str,
    oa_id: str,
    user_id: str,
    text: str | None,
    image: Path | None,
    file: Path | None,
    location: str | None,
) -> None:
    """Post one correctly signed user_send_* event to <to>/zalo/webhook.

    Images and files are first uploaded to <to>/_sim/media, the simulator's stand-in for
    Zalo's CDN, and the event carries their URL. Exits non-zero unless Tipline answers 2xx.
    """
    if sum(x is not None for x in (text, image, file, location)) != 1:
        raise click.UsageError("give exactly one of --text, --image, --file, --location")
    try:
        with httpx.Client(timeout=30.0) as client:
            raw = build_event(
                oa_id,
                user_id,
                text=text,
                image=upload_media(to, image, client=client) if image else None,
                file=upload_media(to, file, client=client) if file else None,
                location=_location(location) if location is not None else None,
                app_id=app_id_from_env(),
            )
            response = post_event(
                to, raw, app_id=app_id_from_env(), oa_secret_key=oa_secret_from_env(),
                client=client,
            )
    except httpx.HTTPError as exc:
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"HTTP {response.status_code}")
    click.echo(response.text.rstrip())
    if not response.is_success:
        raise SystemExit(1)
