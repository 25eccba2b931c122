"""Helpers for the audit witness and restore tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner

from tipline.audit import actions, record
from tipline.cli import main
from tipline.runtime import Runtime


def add_events(runtime: Runtime, n: int) -> None:
    for i in range(n):
        with runtime.sessions() as session, session.begin():
            record(session, action=actions.TIP_RECEIVED, object_id=f"tip{i}")


def audit_cli(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> Callable[..., tuple[int, str]]:
    """`tipline audit …` in the test's environment: (exit code, output)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def run(*args: str) -> tuple[int, str]:
        runtime.engine.dispose()
        result = CliRunner().invoke(main, ["audit", *args], catch_exceptions=False)
        return result.exit_code, result.output

    return run
