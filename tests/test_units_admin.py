"""Admins add and rename units in the UI (issue 19): validated in Vietnamese, audited, and
a new commune under a keyed district gets its key version at once."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select

from tests.test_admin import admin, audit_events, unit_public_id  # noqa: F401  # admin: fixture
from tests.triage_helpers import post_form
from tipline.audit import actions
from tipline.models import Unit, UnitKey
from tipline.runtime import Runtime


def test_an_admin_adds_a_commune_under_the_province(
    admin: FlaskClient, runtime: Runtime  # noqa: F811
) -> None:
    page = admin.get("/admin/units/new")
    assert page.status_code == 200 and "Cấp đơn vị" in page.get_data(as_text=True)
    form = {
        "code": "v2025:32140",
        "name": "Công an xã Tân Hưng",
        "level": "commune",
        "parent": "v2025:96",
    }
    done = post_form(admin, "/admin/units/new", "/admin/units/new", form)
    assert done.status_code == 302
    with runtime.sessions() as db:
        unit = db.scalars(select(Unit).where(Unit.code == "v2025:32140")).one()
        assert unit.parent is not None and unit.parent.code == "v2025:96"
        keys = db.scalars(select(UnitKey).where(UnitKey.unit_id == unit.id)).all()
    assert len(keys) == 1  # the province holds keys: the commune's is granted to it
    created_events = audit_events(runtime, actions.UNIT_CREATE)
    [created] = [e for e in created_events if e.object_id == unit.public_id]
    assert created.actor_name == "quantri"
    assert done.location.endswith(f"/admin/units/{unit.public_id}")


def test_bad_units_are_refused_in_vietnamese_and_change_nothing(
    admin: FlaskClient, runtime: Runtime  # noqa: F811
) -> None:
    with runtime.sessions() as db:
        before = db.scalar(select(Unit.id).order_by(Unit.id.desc()).limit(1))
    commune = {"level": "commune", "parent": ""}
    cases = [
        (commune | {"code": "v2025:32134", "name": "Trùng", "parent": "v2025:96"}, "đã có"),
        (commune | {"code": "co khoang trang", "name": "X"}, "khoảng trắng"),
        (commune | {"code": "v2025:1", "name": ""}, "Tên"),
        (commune | {"code": "v2025:2", "name": "X", "level": "galaxy"}, "Cấp"),
        (commune | {"code": "v2025:3", "name": "X", "parent": "v2025:404"}, "Không có đơn vị"),
    ]
    for form, words in cases:
        refused = post_form(admin, "/admin/units/new", "/admin/units/new", form)
        assert refused.status_code == 400, form
        assert words in refused.get_data(as_text=True), form
    with runtime.sessions() as db:
        assert db.scalar(select(Unit.id).order_by(Unit.id.desc()).limit(1)) == before


def test_an_admin_renames_a_unit(admin: FlaskClient, runtime: Runtime) -> None:  # noqa: F811
    unit = unit_public_id(runtime, "v2025:32134")
    url = f"/admin/units/{unit}"
    assert admin.get(url).status_code == 200
    assert post_form(admin, url, f"{url}/rename", {"name": " "}).status_code == 400
    done = post_form(admin, url, f"{url}/rename", {"name": "Công an xã Lương Thế Trân (mới)"})
    assert done.status_code == 302
    with runtime.sessions() as db:
        assert db.scalars(select(Unit.name).where(Unit.public_id == unit)).one().endswith("(mới)")
    [renamed] = audit_events(runtime, actions.UNIT_RENAME)
    assert renamed.object_id == unit and renamed.actor_name == "quantri"
    assert admin.get("/admin/units/nosuchunit").status_code == 404


def test_officers_cannot_manage_units(client: FlaskClient, units: dict[str, str]) -> None:
    from tests.triage_helpers import login

    login(client, "chihuy", units["totp:chihuy"])
    assert client.get("/admin/units/new").status_code == 403
