"""Structural rules: cryptographic primitives only in keys/, migrations match the models."""

from __future__ import annotations

import ast
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from tests.databases import Databases, raw, table_names
from tipline.migrate import alembic_config, downgrade, upgrade
from tipline.models import Base

ROOT = Path(__file__).resolve().parent.parent
PRIMITIVES = {"hashlib", "hmac", "cryptography", "argon2", "nacl", "Crypto", "ssl"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_keys_imports_cryptographic_primitives() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & PRIMITIVES)
        for folder in ("tipline", "triage", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
        if imported_modules(path) & PRIMITIVES
    }
    assert offenders == {}
    assert imported_modules(ROOT / "keys" / "envelope.py") & PRIMITIVES  # the check can fire


def test_migrations_match_the_models_and_go_down_and_up(databases: Databases) -> None:
    """On this run's backend: one head, reached, no drift from the models, and down to
    nothing (PostgreSQL: no audit trigger function left either) and up again."""
    url = databases.create()
    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    assert len(heads) == 1, f"unmerged Alembic heads: {sorted(heads)}"
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert set(context.get_current_heads()) == heads
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    assert set(table_names(url)) == set(Base.metadata.tables)
    downgrade(url, "base")
    assert table_names(url) == []
    with raw(url, bypass_triggers=False) as db:
        if url.startswith("postgresql"):
            leftovers = db.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'tipline%'")
            assert leftovers == []
        assert db.execute("SELECT version_num FROM alembic_version") == []
    upgrade(url)
    with engine.connect() as connection:
        assert set(MigrationContext.configure(connection).get_current_heads()) == heads
    engine.dispose()
    databases.drop(url)


def test_every_ui_string_has_a_vietnamese_translation_and_the_catalog_is_compiled() -> None:
    from babel.messages.extract import extract_from_dir
    from babel.messages.mofile import read_mo
    from babel.messages.pofile import read_po

    folder = ROOT / "tipline" / "web" / "translations" / "vi" / "LC_MESSAGES"
    with open(folder / "messages.po", "rb") as handle:
        catalog = read_po(handle)
    # Plural entries (WTForms' length messages) have a list of ids and of strings: as tuples.
    def key(value: object) -> object:
        return value if isinstance(value, str) else tuple(value)  # type: ignore[arg-type]

    translated = {key(m.id) for m in catalog if m.id and m.string}
    method_map = [
        ("triage/**.py", "python"),
        ("tipline/**.py", "python"),
        ("templates/**.html", "jinja2"),
    ]
    used = {
        message
        for _, _, message, _, _ in extract_from_dir(
            ROOT,
            method_map,
            keywords={"_": None, "_l": None, "lazy_gettext": None, "gettext": None},
        )
        if isinstance(message, str)
    }
    assert used, "the extraction found no strings: the check would mean nothing"
    assert sorted(used - translated) == []
    # The compiled catalog says what the source says: compared by content, never by the bytes
    # a given Babel release happens to write.
    with open(folder / "messages.mo", "rb") as handle:
        compiled = read_mo(handle)
    def frozen(value: object) -> object:  # a plural entry's id and strings are sequences
        return value if isinstance(value, str) else tuple(value)  # type: ignore[call-overload]

    assert {frozen(m.id): frozen(m.string) for m in compiled if m.id} == {
        frozen(m.id): frozen(m.string) for m in catalog if m.id and m.string and not m.fuzzy
    }
