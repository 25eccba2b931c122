"""Asserting that exactly the expected audit events were written (reusable by every flow test).

    mark = audit_mark(runtime)
    ... do the flow ...
    expect_events(runtime, [
        Expected(actions.LOGIN, actor="canbo", client_address="127.0.0.1"),
        Expected(actions.TIP_OPEN, actor="canbo", object_id=tip_id, unit="v2025:32134"),
    ], after=mark)

Fields left as ANY are not compared; ``detail`` is compared as a subset. Events must appear in
the given order unless ``ordered=False``. The chain must verify, and no event may carry a
client address without a staff actor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from tipline.audit import verify_chain
from tipline.models import AuditEvent, AuditHead
from tipline.runtime import Runtime


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()


@dataclass(frozen=True)
class Expected:
    action: str
    object_id: Any = ANY
    actor: Any = ANY  # a username, or None for the system
    unit: Any = ANY  # a unit code or None
    outcome: Any = "ok"
    client_address: Any = ANY
    detail: dict[str, Any] = field(default_factory=dict)

    def mismatches(self, event: AuditEvent) -> list[str]:
        wrong = []
        for name, want, got in (
            ("action", self.action, event.action),
            ("object_id", self.object_id, event.object_id),
            ("actor", self.actor, event.actor_name),
            ("unit", self.unit, event.unit_code),
            ("outcome", self.outcome, event.outcome),
            ("client_address", self.client_address, event.client_address),
        ):
            if want is not ANY and want != got:
                wrong.append(f"{name}: want {want!r}, got {got!r}")
        for key, value in self.detail.items():
            if key not in event.detail or (value is not ANY and event.detail[key] != value):
                wrong.append(f"detail[{key}]: want {value!r}, got {event.detail.get(key)!r}")
        return wrong


def audit_mark(runtime: Runtime) -> int:
    """The chain's head now: pass it as ``after`` to look only at what follows."""
    with runtime.sessions() as session:
        return int(session.scalar(select(AuditHead.seq)) or 0)


def _show(event: AuditEvent) -> str:
    return (
        f"#{event.seq} {event.action} actor={event.actor_name} unit={event.unit_code} "
        f"object={event.object_id} outcome={event.outcome} detail={event.detail}"
    )


def expect_events(
    runtime: Runtime, expected: Sequence[Expected], *, after: int = 0, ordered: bool = True
) -> list[AuditEvent]:
    """Assert the events after seq ``after`` are exactly ``expected``; return them."""
    with runtime.sessions() as session:
        events = list(
            session.scalars(select(AuditEvent).where(AuditEvent.seq > after).order_by("seq"))
        )
        result = verify_chain(session)
    assert result.ok, result.describe()
    listing = "\n".join(_show(e) for e in events)
    assert len(events) == len(expected), (
        f"{len(events)} events, expected {len(expected)}:\n{listing}"
    )
    for event in events:
        assert event.client_address is None or event.actor_id is not None, _show(event)
    if ordered:
        for i, (want, event) in enumerate(zip(expected, events, strict=True)):
            wrong = want.mismatches(event)
            assert not wrong, f"event {i} ({_show(event)}): {'; '.join(wrong)}\n{listing}"
    else:
        left = list(events)
        for want in expected:
            match = next((e for e in left if not want.mismatches(e)), None)
            assert match is not None, f"no event like {want}:\n{listing}"
            left.remove(match)
    return events
