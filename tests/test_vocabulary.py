"""One vocabulary: every value a producer can write has a label in both languages, and the
migration that unified the vocabulary rewrote the rows written before it."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from flask import Flask
from flask_babel import Babel, force_locale
from sqlalchemy import MetaData, Table, create_engine, select

from keys import generate_keypair
from tests.databases import Databases
from tipline.audit import actions
from tipline.migrate import downgrade, upgrade
from tipline.models import (
    AttachmentState,
    Category,
    Delivery,
    GrantReason,
    MessageKind,
    Notification,
    NotificationKind,
    Outcome,
    Priority,
    QuarantineReason,
    Refusal,
    Role,
    SendProblem,
    Tip,
    TipStatus,
)
from tipline.routing.classify import CATEGORIES, classify
from tipline.web.labels import (
    ACTION_LABELS,
    ATTACHMENT_STATE_LABELS,
    CATEGORY_LABELS,
    DELIVERY_LABELS,
    GRANT_REASON_LABELS,
    MESSAGE_KIND_LABELS,
    OUTCOME_LABELS,
    PRIORITY_LABELS,
    QUARANTINE_REASON_LABELS,
    REFUSAL_LABELS,
    ROLE_LABELS,
    SEND_PROBLEM_LABELS,
    STATUS_LABELS,
)

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "tipline" / "web" / "translations"

# Every vocabulary the staff UI shows, with its labels.
SHOWN: list[tuple[type[StrEnum], Mapping[StrEnum, object]]] = [
    (Category, CATEGORY_LABELS),
    (TipStatus, STATUS_LABELS),
    (Priority, PRIORITY_LABELS),
    (Role, ROLE_LABELS),
    (Delivery, DELIVERY_LABELS),
    (AttachmentState, ATTACHMENT_STATE_LABELS),
    (Refusal, REFUSAL_LABELS),
    (Outcome, OUTCOME_LABELS),
    (QuarantineReason, QUARANTINE_REASON_LABELS),
    (MessageKind, MESSAGE_KIND_LABELS),
    (SendProblem, SEND_PROBLEM_LABELS),
    (GrantReason, GRANT_REASON_LABELS),
]


@pytest.fixture(scope="module")
def babel_app() -> Flask:
    """Just enough of an app for Flask-Babel to render a label in a given language."""
    app = Flask(__name__)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    Babel(app)
    return app


def vietnamese_catalog() -> dict[str, str]:
    with open(TRANSLATIONS / "vi" / "LC_MESSAGES" / "messages.po", "rb") as handle:
        catalog = read_po(handle)
    return {m.id: m.string for m in catalog if isinstance(m.id, str) and m.string and not m.fuzzy}


def untranslated(app: Flask, labels: Mapping[str, object]) -> list[str]:
    """The labels whose English text has no Vietnamese translation, or is not the one shown."""
    catalog = vietnamese_catalog()
    missing = []
    with app.app_context():
        for value, name in labels.items():
            with force_locale("en"):
                english = str(name)
            with force_locale("vi"):
                shown = str(name)
            if english not in catalog or shown != catalog[english]:
                missing.append(f"{value}: {english!r}")
    return missing


@pytest.mark.parametrize(("vocabulary", "labels"), SHOWN, ids=lambda v: getattr(v, "__name__", ""))
def test_every_member_the_ui_shows_has_a_label_in_both_languages(
    babel_app: Flask, vocabulary: type[StrEnum], labels: Mapping[StrEnum, object]
) -> None:
    # Keyed by the members themselves: a plain string key equal to a value would pass the
    # coverage check below and let the literal drift from the enum again.
    assert [key for key in labels if not isinstance(key, vocabulary)] == []
    assert sorted(set(vocabulary) - set(labels)) == []
    assert untranslated(babel_app, labels) == []


def test_every_audited_action_has_a_label_in_both_languages(babel_app: Flask) -> None:
    assert sorted(actions.ALL - set(ACTION_LABELS)) == []
    assert untranslated(babel_app, ACTION_LABELS) == []


def test_the_label_check_fails_on_an_untranslated_label(babel_app: Flask) -> None:
    from flask_babel import lazy_gettext as _l

    assert untranslated(babel_app, {"x": _l("A label nobody translated")}) != []


def test_every_category_the_classifier_can_write_is_a_labelled_category() -> None:
    """The keyword table's categories, and its two fallbacks, are Category members."""
    assert [c for c in CATEGORIES if not isinstance(c, Category)] == []
    written = {classify(keywords[0]).category for keywords in CATEGORIES.values()}
    assert written == set(CATEGORIES)  # each category's own keyword finds it
    written |= {
        classify("Tôi muốn báo một việc").category,
        classify("Cho hỏi thủ tục làm căn cước ở đâu?").category,
    }
    assert {Category.OTHER, Category.PROCEDURE_QUESTION} <= written
    assert [c for c in written if not isinstance(c, Category) or c not in CATEGORY_LABELS] == []


def test_migration_0015_rewrites_the_old_categories_and_notification_kinds(
    databases: Databases,
) -> None:
    """Rows written before 0015 with the classifier's categories and the manual assignment's
    notification kind read as the shared vocabulary after it; its downgrade keeps them
    (revision 0014's UI knows these values too)."""
    url = databases.create()
    upgrade(url, "0014_one_head")
    engine = create_engine(url)
    written = {
        "bao_luc_gay_roi": Category.VIOLENCE,
        "buon_lau_hang_gia": Category.SMUGGLING,
        "ma_tuy": Category.DRUGS,
        None: None,
    }
    # Rows as that revision's schema holds them (the models have grown columns since).
    schema = MetaData()
    tips = Table("tips", schema, autoload_with=engine)
    notifications = Table("notifications", schema, autoload_with=engine)
    with engine.begin() as conn:
        for n, old in enumerate(written):
            conn.execute(
                tips.insert().values(
                    _defaults(
                        tips,
                        Tip.__table__,
                        receipt_code=f"CODE{n}",
                        informant_alias=f"alias-{n}",
                        public_key=generate_keypair().public_key.to_bytes(),
                        category=old,
                    )
                )
            )
        for kind in ("assigned", NotificationKind.ESCALATED):
            conn.execute(
                notifications.insert().values(
                    _defaults(notifications, Notification.__table__, kind=str(kind))
                )
            )

    def stored() -> tuple[dict[str, str | None], list[str]]:
        with engine.connect() as conn:
            categories = dict(conn.execute(select(tips.c.informant_alias, tips.c.category)).all())
            kinds = list(
                conn.scalars(select(notifications.c.kind).order_by(notifications.c.id))
            )
        return categories, kinds

    expected = (
        {f"alias-{n}": new for n, new in enumerate(written.values())},
        [NotificationKind.ASSIGNED_TIP, NotificationKind.ESCALATED],
    )
    upgrade(url)
    assert stored() == expected
    downgrade(url, "0014_one_head")
    assert stored() == expected
    engine.dispose()
    databases.drop(url)


def _defaults(table: Table, model: Any, **values: object) -> dict[str, object]:
    """``values``, and the model's Python-side defaults for the other columns ``table`` has."""
    row: dict[str, object] = {}
    for column in table.columns:
        if column.name in values:
            row[column.name] = values[column.name]
            continue
        model_column = model.c.get(column.name)
        default = model_column.default if model_column is not None else None
        if default is not None and hasattr(default, "arg"):
            row[column.name] = default.arg(None) if callable(default.arg) else default.arg
    return row
