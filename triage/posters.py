"""Printable posters for a unit: a QR code to the web form (/bao-tin?don-vi=…) and its OA.

For the unit's own officers and commanders above it (:func:`visible_unit_ids`). The QR codes
are made here (segno, no third party); the page prints on A4 with the browser's print.
"""

from __future__ import annotations

from io import BytesIO

import segno
from flask import Blueprint, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import Forbidden, NotFound

from tipline.models import Unit
from triage.access import visible_unit_ids
from triage.users import runtime, staff

blueprint = Blueprint("posters", __name__, url_prefix="/triage/units")


def _unit(public_id: str) -> tuple[Unit, list[str]]:
    with runtime().sessions() as db:
        unit = db.scalars(select(Unit).where(Unit.public_id == public_id)).one_or_none()
        if unit is None:
            raise NotFound()
        if unit.id not in visible_unit_ids(db, staff()):
            raise Forbidden()
        oa_ids = [account.oa_id for account in unit.official_accounts]
        db.expunge(unit)
        return unit, oa_ids


def form_link(unit: Unit) -> str:
    """The link the poster's QR code carries: on ``TIPLINE_PUBLIC_URL`` when set, because
    officers print posters from the staff address, which the public cannot reach."""
    base = runtime().config.public_url
    query: dict[str, str] = {"don-vi": unit.public_id}
    if base:
        return base + url_for("web_intake.report", _external=False, **query)
    return url_for("web_intake.report", _external=True, **query)


@blueprint.get("/<public_id>/poster.png")
def poster_png(public_id: str) -> ResponseReturnValue:
    """The QR code of the unit's form link, as a PNG to print or put on a poster."""
    unit, _oa = _unit(public_id)
    buffer = BytesIO()
    segno.make(form_link(unit), error="m").save(buffer, kind="png", scale=12, border=4)
    return buffer.getvalue(), 200, {"Content-Type": "image/png"}


@blueprint.get("/<public_id>/poster")
def poster(public_id: str) -> ResponseReturnValue:
    """A printable page: the unit's name, the form's QR code and link, its Zalo OA."""
    unit, oa_ids = _unit(public_id)
    link = form_link(unit)
    oas = [
        (oa, segno.make(f"https://zalo.me/{oa}", error="m").svg_data_uri(scale=6)) for oa in oa_ids
    ]
    return render_template(
        "triage/poster.html",
        unit=unit,
        link=link,
        form_qr=url_for("posters.poster_png", public_id=unit.public_id),
        oas=oas,
    )
