"""`tipline units add|set-oa|list|import`: police units and their OAs."""

from __future__ import annotations

import json

import click

from tipline.cli.context import runtime
from tipline.models import UnitLevel
from tipline.units import UnitError


@click.group()
def units() -> None:
    """Police units and their OAs."""


@units.command("add")
@click.argument("code")
@click.argument("name")
@click.option(
    "--level", required=True, type=click.Choice([level.value for level in UnitLevel])
)
@click.option("--parent", "parent_code", default=None, help="Code of the parent unit.")
def units_add(code: str, name: str, level: str, parent_code: str | None) -> None:
    """Add a unit with CODE (e.g. v2025:32134) and NAME."""
    from tipline.units import add_unit

    rt = runtime()
    try:
        with rt.sessions() as session, session.begin():
            unit = add_unit(session, code=code, name=name, level=level, parent_code=parent_code)
            keyed = unit.current_key is not None
    except UnitError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"added {code}" + ("" if keyed else " (its key is created with its first officer)"))


@units.command("set-oa")
@click.argument("code")
@click.argument("oa_id")
@click.option(
    "--move", is_flag=True, help="Move the OA from the unit it is attached to (asked, not assumed)."
)
def units_set_oa(code: str, oa_id: str, move: bool) -> None:
    """Attach the Zalo OA OA_ID to unit CODE (connect it to Zalo next: docs/zalo.md)."""
    from tipline.units import set_oa

    rt = runtime()
    try:
        with rt.sessions() as session, session.begin():
            set_oa(session, code, oa_id, move=move)
    except UnitError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"OA {oa_id} → {code}")


@units.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON list of units.")
def units_list(as_json: bool) -> None:
    """List units."""
    from tipline.units import list_units

    rt = runtime()
    with rt.sessions() as session:
        rows = list_units(session)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        oas = ", ".join(row["oa_ids"]) or "-"
        click.echo(f"{row['code']:<14} {row['level']:<9} {row['name']}  OA: {oas}")


@units.command("import")
@click.option("--legacy", is_flag=True, help="The pre-2025 three tiers (63 / 696 / 10,051).")
def units_import(legacy: bool) -> None:
    """Create the national structure of units (34 provinces, 3,321 communes)."""
    from tipline.routing.importer import import_units

    rt = runtime()
    with rt.sessions() as session, session.begin():
        result = import_units(session, legacy=legacy)
    click.echo(
        f"{result.provinces} provinces, {result.districts} districts, "
        f"{result.communes} communes added; {result.skipped} already present"
    )
