"""docs/reference.md against the code: every command, setting, route and make target is there.

The reference is written by hand; these checks make it fail loudly when the code grows a
command, an option, an environment variable, a URL rule or a make target it does not name,
and when its route table names a route the app does not have.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import click
from flask import Flask

from tipline.app import create_app
from tipline.cli import main
from tipline.config import FILE_SETTINGS, Config

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference.md"
VARIABLE = re.compile(r"(?<![A-Z0-9_])(?:TIPLINE|ZALO)_[A-Z0-9_]*[A-Z0-9]")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ROUTE_ROW = re.compile(r"^\|\s*`(?P<methods>[A-Z, ]+)`\s*\|\s*`(?P<rule>/[^`]*)`")


def reference() -> str:
    return REFERENCE.read_text(encoding="utf-8")


def command_paths(
    group: click.Group, prefix: str = "tipline"
) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from command_paths(command, path)


def sections(text: str) -> list[tuple[str, str]]:
    """(heading line, body) of each Markdown section."""
    found: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("#"):
            found.append((line, []))
        elif found:
            found[-1][1].append(line)
    return [(heading, "\n".join(body)) for heading, body in found]


def long_options(command: click.Command) -> list[str]:
    return sorted(
        option
        for param in command.params
        if isinstance(param, click.Option)
        for option in param.opts
        if option.startswith("--")
    )


def test_every_command_and_option_is_in_the_reference() -> None:
    """Each command has a section of its own whose heading names it; the section names each
    of its long options. Groups need no section of their own: their commands have one."""
    text = reference()
    paths = dict(command_paths(main))
    assert "tipline db upgrade" in paths and "tipline zalo send" in paths  # the walk can fire
    leaves = {"tipline": main} | {
        path: command for path, command in paths.items() if not isinstance(command, click.Group)
    }
    missing: list[str] = []
    for path, command in sorted(leaves.items()):
        bodies = [body for heading, body in sections(text) if f"`{path}`" in heading]
        if not bodies:
            missing.append(path)
            continue
        missing += [f"{path} {o}" for o in long_options(command) if f"`{o}`" not in "".join(bodies)]
    assert missing == [], f"commands or options without their section in reference.md: {missing}"
    envvars = sorted(
        {
            param.envvar
            for command in paths.values()
            for param in command.params
            if isinstance(param, click.Option) and isinstance(param.envvar, str)
        }
    )
    assert envvars, "no option reads an environment variable: the check cannot fire"
    assert [name for name in envvars if f"`{name}`" not in text] == []


def string_literals(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def config_variables() -> set[str]:
    """Every TIPLINE_*/ZALO_* name in a string literal of tipline/config.py."""
    return {
        match
        for literal in string_literals(ROOT / "tipline" / "config.py")
        for match in VARIABLE.findall(literal)
    }


def environment_reads() -> set[str]:
    """Literal names read with ``<mapping>.get("NAME", …)`` or ``environ["NAME"]`` anywhere in
    tipline/, triage/ and the Python files of deploy/ (the config's own reads, and the few
    that bypass it)."""
    names: set[str] = set()
    files = [*(ROOT / "tipline").rglob("*.py"), *(ROOT / "triage").rglob("*.py")]
    files += sorted((ROOT / "deploy").glob("*.py"))
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            arg: ast.expr | None = None
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in ("get", "getenv", "setdefault") and node.args:
                    arg = node.args[0]
            elif isinstance(node, ast.Subscript):
                arg = node.slice
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if VARIABLE.fullmatch(arg.value):
                    names.add(arg.value)
    return names


def test_every_environment_variable_is_in_the_reference() -> None:
    text = reference()
    from_config = config_variables()
    # The check can fire: the config reads these, one of them only through an f-string's parts.
    assert {"TIPLINE_DATA_DIR", "ZALO_APP_SECRET", "TIPLINE_TRANSIT_PUBLIC_KEY"} <= from_config
    elsewhere = environment_reads()
    assert {"TIPLINE_ESCALATE_AFTER_MINUTES", "TIPLINE_TIER"} <= elsewhere
    file_forms = {f"{name}_FILE" for name in FILE_SETTINGS}
    wanted = sorted(from_config | elsewhere | file_forms)
    missing = [name for name in wanted if f"`{name}`" not in text]
    assert missing == [], f"environment variables not in docs/reference.md: {missing}"


def documented_routes(text: str) -> set[tuple[str, str]]:
    """(method, rule) of each row of the reference's route tables."""
    rows = set()
    for line in text.splitlines():
        match = ROUTE_ROW.match(line)
        if match:
            for method in match["methods"].split(","):
                rows.add((method.strip(), match["rule"]))
    return rows


def app_routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method in METHODS
    }


def test_every_route_is_in_the_reference_and_no_other(config: Config) -> None:
    """Built as tests/conftest.py's ``app`` fixture builds it (simulator mounted, so its
    ``/_sim`` routes, which the reference documents, are checked too)."""
    app = create_app(config)
    routes = app_routes(app)
    assert ("POST", "/zalo/webhook") in routes and ("GET", "/_sim/messages") in routes
    documented = documented_routes(reference())
    assert sorted(routes - documented) == [], "routes missing from docs/reference.md"
    assert sorted(documented - routes) == [], "docs/reference.md lists routes the app lacks"


def test_the_intake_tier_is_described_as_built(config: Config) -> None:
    """The reference says which routes the intake tier serves: exactly these."""
    intake = {
        rule
        for _method, rule in app_routes(create_app(config, staff_ui=False))
        if not rule.startswith(("/_sim", "/static"))
    }
    assert intake == {"/zalo/webhook", "/healthz", "/livez", "/readyz"}
    assert (
        "`tipline.wsgi_intake:app` serves only `POST /zalo/webhook` and the health checks "
        "(`GET /healthz`, `/livez`, `/readyz`)"
    ) in reference()


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.MULTILINE)
    assert phony is not None
    return set(phony.group(1).split())


def test_every_make_target_is_in_the_reference() -> None:
    text = reference()
    targets = make_targets()
    assert {"run", "test"} <= targets
    assert sorted(t for t in targets if f"`make {t}`" not in text) == []
