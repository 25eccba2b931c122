"""What the auditor pages read: filtered, paginated events; CSV export; anomaly flags.

Everything here reads ``audit_events`` only (plus the tips table for current assignees):
auditors hold no unit key and see no tip content, and nothing here could show them any.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta, timezone
from itertools import batched

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, aliased

from tipline.audit import actions
from tipline.audit.chain import record
from tipline.models import AuditEvent, Officer, Outcome, Role, Tip
from tipline.time_rules import VIETNAM

MAX_PER_PAGE = 500


@dataclass(frozen=True)
class EventPage:
    items: list[AuditEvent]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def _as_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def filter_events(
    *,
    officer: str | None = None,
    unit: str | Sequence[str] | None = None,
    action: str | Sequence[str] | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: str | None = None,
) -> Select[AuditEvent]:
    """The SELECT behind every listing. ``officer``: a public id or a username.

    ``unit``: one code or several (a commander's subtree); ``since`` inclusive, ``until``
    exclusive.
    """
    stmt = select(AuditEvent)
    if officer:
        stmt = stmt.where(or_(AuditEvent.actor_id == officer, AuditEvent.actor_name == officer))
    if (units := _as_list(unit)) is not None:
        stmt = stmt.where(AuditEvent.unit_code.in_(units))
    if (names := _as_list(action)) is not None:
        stmt = stmt.where(AuditEvent.action.in_(names))
    if object_id:
        stmt = stmt.where(AuditEvent.object_id == object_id)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    if outcome:
        stmt = stmt.where(AuditEvent.outcome == outcome)
    return stmt


def query_events(
    session: Session,
    *,
    officer: str | None = None,
    unit: str | Sequence[str] | None = None,
    action: str | Sequence[str] | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: str | None = None,
    page: int = 1,
    per_page: int = 50,
    newest_first: bool = True,
) -> EventPage:
    """One page of events matching the filters (see :func:`filter_events`), in chain order."""
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    page = max(1, page)
    stmt = filter_events(
        officer=officer,
        unit=unit,
        action=action,
        object_id=object_id,
        since=since,
        until=until,
        outcome=outcome,
    )
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    order = AuditEvent.seq.desc() if newest_first else AuditEvent.seq.asc()
    items = list(
        session.scalars(stmt.order_by(order).offset((page - 1) * per_page).limit(per_page))
    )
    return EventPage(items, total, page, per_page)


CSV_COLUMNS = (
    "seq",
    "public_id",
    "at",
    "actor_id",
    "actor_name",
    "actor_role",
    "unit_code",
    "unit_name",
    "action",
    "action_label",
    "object_id",
    "receipt_code",
    "outcome",
    "client_address",
    "detail",
    "hash",
)
CSV_BATCH = 1000  # events per lookup of receipt codes


@dataclass(frozen=True)
class CsvNames:
    """What the export writes beside the stored values, as the auditor's page shows them:
    times in ``zone``, action labels, unit names, and the receipt codes of tips."""

    zone: timezone = VIETNAM
    actions: Mapping[str, str] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    receipts: Callable[[Sequence[str]], Mapping[str, str]] = field(default=lambda ids: {})


def _cell(value: object) -> str:
    """Spreadsheet-safe: a cell starting with = + - @ is not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_row(event: AuditEvent, names: CsvNames, receipts: Mapping[str, str]) -> list[str]:
    values: dict[str, object] = {
        "seq": event.seq,
        "public_id": event.public_id,
        "at": event.at.astimezone(names.zone).isoformat(timespec="seconds"),
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "actor_role": event.actor_role,
        "unit_code": event.unit_code,
        "unit_name": names.units.get(event.unit_code or ""),
        "action": event.action,
        "action_label": names.actions.get(event.action, event.action),
        "object_id": event.object_id,
        "receipt_code": receipts.get(event.object_id or ""),
        "outcome": event.outcome,
        "client_address": event.client_address,
        "detail": event.detail_json,
    }
    return [_cell(values[c]) for c in CSV_COLUMNS[:-1]] + [event.hash]


def export_csv(
    session: Session,
    *,
    actor: Officer,
    client_address: str | None = None,
    officer: str | None = None,
    unit: str | Sequence[str] | None = None,
    action: str | Sequence[str] | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: str | None = None,
    limit: int = 1_000_000,
    names: CsvNames | None = None,
) -> str:
    """CSV of the matching events in chain order, and an AUDIT_EXPORT event for it.

    The export event is recorded in ``session``; it counts as done only when the caller
    commits. Hashes are included so an exported file can be checked against a checkpoint; the
    stored values are kept as stored (``at`` in ``names.zone`` with its offset, the same
    instant), with the labels and names the page shows in columns of their own.
    """
    names = names or CsvNames()
    stmt = filter_events(
        officer=officer,
        unit=unit,
        action=action,
        object_id=object_id,
        since=since,
        until=until,
        outcome=outcome,
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    rows = 0
    for batch in batched(session.scalars(stmt.order_by(AuditEvent.seq).limit(limit)), CSV_BATCH):
        receipts = names.receipts([e.object_id for e in batch if e.object_id])
        for event in batch:
            writer.writerow(_csv_row(event, names, receipts))
        rows += len(batch)
    detail = {"rows": str(rows)}
    for key, value in (("officer", officer), ("object", object_id), ("outcome", outcome)):
        if value:
            detail[key] = value[:100]
    for key, many in (("unit", _as_list(unit)), ("action", _as_list(action))):
        if many:
            detail[key] = ",".join(many)[:100]
    if since is not None:
        detail["since"] = since.isoformat()
    if until is not None:
        detail["until"] = until.isoformat()
    record(
        session,
        action=actions.AUDIT_EXPORT,
        actor=actor,
        client_address=client_address,
        detail=detail,
    )
    return out.getvalue()


# --- anomaly flags -------------------------------------------------------------------------

OPEN_BURST = "open_burst"
OFF_HOURS_OPEN = "off_hours_open"
NOT_ASSIGNED_OPEN = "not_assigned_open"
FAILED_LOGINS = "failed_logins"
DENIED_OPEN = "denied_open"
LOGIN_SPRAY = "login_spray"  # one address, failed logins on many accounts
LOGIN_SWARM = "login_swarm"  # one account, failed logins from many addresses
NEW_ACCOUNT_GRANT = "new_account_grant"  # a unit key granted to a recently created account


@dataclass(frozen=True)
class Anomaly:
    """A pattern worth an auditor's look; the events are named by public id, oldest first."""

    kind: str
    start: datetime
    end: datetime
    count: int
    event_ids: tuple[str, ...]
    actor_id: str | None = None
    actor_name: str | None = None
    unit_code: str | None = None
    object_id: str | None = None
    client_address: str | None = None


@dataclass(frozen=True)
class AnomalyRules:
    """Thresholds; the defaults flag what a human should look at, not what is forbidden."""

    burst_opens: int = 20
    burst_window: timedelta = timedelta(minutes=10)
    duty_start: time = time(7, 0)
    duty_end: time = time(22, 0)
    zone: timezone = VIETNAM
    failed_logins: int = 5
    failed_window: timedelta = timedelta(minutes=15)
    spray_accounts: int = 4  # distinct accounts failing from one address ...
    spray_addresses: int = 4  # ... or distinct addresses failing on one account ...
    spray_window: timedelta = timedelta(hours=1)  # ... within this window
    # A unit key granted this soon after the account was created: whoever created it knew
    # its first password (tipline.grants).
    new_account_grant: timedelta = timedelta(days=3)
    # The duty roster, when known (tipline.audit.roster): (officer public id, time) → on duty,
    # or None for an officer the roster says nothing about (the duty hours apply).
    on_duty: Callable[[str, datetime], bool | None] | None = field(default=None, compare=False)


def _bursts(
    events: Iterable[AuditEvent],
    threshold: int,
    window: timedelta,
    size: Callable[[Sequence[AuditEvent]], int] = len,
) -> list[list[AuditEvent]]:
    """Maximal runs in which the events within ``window`` reach ``threshold``, measured by
    ``size`` (how many events by default; e.g. how many distinct accounts)."""
    runs: list[list[AuditEvent]] = []
    recent: deque[AuditEvent] = deque()
    current: list[AuditEvent] | None = None
    for event in events:
        recent.append(event)
        while recent and event.at - recent[0].at > window:
            recent.popleft()
        if size(recent) >= threshold:
            if current is None:
                current = list(recent)
                runs.append(current)
            else:
                current.append(event)
        elif current is not None and event.at - current[-1].at > window:
            current = None
    return runs


def _anomaly(kind: str, run: Sequence[AuditEvent], **extra: str | None) -> Anomaly:
    first = run[0]
    return Anomaly(
        kind=kind,
        start=first.at,
        end=run[-1].at,
        count=len(run),
        event_ids=tuple(dict.fromkeys(e.public_id for e in run)),
        actor_id=first.actor_id,
        actor_name=first.actor_name,
        unit_code=first.unit_code,
        **extra,
    )


def anomalies(
    session: Session,
    *,
    since: datetime,
    until: datetime | None = None,
    officer: str | None = None,
    unit: str | Sequence[str] | None = None,
    rules: AnomalyRules | None = None,
) -> list[Anomaly]:
    """Flags computed on the server from the events in [since, until), oldest first.

    - ``open_burst``: an officer opened ≥ ``burst_opens`` tips within ``burst_window``;
    - ``off_hours_open``: a tip opened by someone the roster (``rules.on_duty``) had off duty,
      or, for someone the roster does not know, outside the duty hours;
    - ``not_assigned_open``: an officer (role ``officer``) opened a tip assigned to someone
      else, by the latest ASSIGN event before the open or else the tip's current assignee.
      Unassigned tips are not flagged: duty officers must open new tips to triage them;
    - ``failed_logins``: ≥ ``failed_logins`` LOGIN_FAILED within ``failed_window`` against one
      account, or from one client address;
    - ``denied_open``: someone asked for a tip outside their units (a refused TIP_OPEN).
      Refused opens count for this flag only: nothing was read;
    - ``login_spray``: LOGIN_FAILED on ≥ ``spray_accounts`` distinct accounts from one client
      address within ``spray_window`` (someone trying the predictable usernames);
    - ``login_swarm``: LOGIN_FAILED on one account from ≥ ``spray_addresses`` distinct
      addresses within ``spray_window`` (guesses spread out to stay under per-address delays);
    - ``new_account_grant``: a unit key granted (approved, or a first key holder's fresh key)
      to an account created less than ``new_account_grant`` before.

    Tips shown in search results (the SEARCH event's ``tips``) count as opens for
    ``open_burst``: a search decrypts and shows text from each.
    """
    rules = rules or AnomalyRules()
    stmt = filter_events(
        officer=officer,
        unit=unit,
        action=[
            actions.TIP_OPEN,
            actions.LOGIN_FAILED,
            actions.ASSIGN,
            actions.SEARCH,
            actions.GRANT,
        ],
        since=since,
        until=until,
    ).order_by(AuditEvent.seq)
    everything = list(session.scalars(stmt))

    def refused_open(event: AuditEvent) -> bool:
        return event.action == actions.TIP_OPEN and event.outcome == Outcome.DENIED

    events = [e for e in everything if not refused_open(e)]
    opens = [e for e in events if e.action == actions.TIP_OPEN]
    found: list[Anomaly] = [
        _anomaly(DENIED_OPEN, [e], object_id=e.object_id) for e in everything if refused_open(e)
    ]

    by_actor: dict[str | None, list[AuditEvent]] = defaultdict(list)
    for event in events:
        if event.action == actions.TIP_OPEN:
            by_actor[event.actor_id].append(event)
        elif event.action == actions.SEARCH:  # one open per tip shown
            by_actor[event.actor_id] += [event] * len(event.detail.get("tips", "").split())
    for runs in by_actor.values():
        for run in _bursts(runs, rules.burst_opens, rules.burst_window):
            found.append(_anomaly(OPEN_BURST, run))

    for event in opens:
        rostered = (
            rules.on_duty(event.actor_id, event.at)
            if rules.on_duty is not None and event.actor_id is not None
            else None
        )
        if rostered is not None:
            off = not rostered
        else:
            local = event.at.astimezone(rules.zone).time()
            if rules.duty_start <= rules.duty_end:
                off = not rules.duty_start <= local < rules.duty_end
            else:  # a night shift crossing midnight
                off = rules.duty_end <= local < rules.duty_start
        if off:
            found.append(_anomaly(OFF_HOURS_OPEN, [event], object_id=event.object_id))

    found.extend(_not_assigned(session, events))

    failed = [e for e in events if e.action == actions.LOGIN_FAILED]
    for key_name in ("object_id", "client_address"):
        groups: dict[str, list[AuditEvent]] = defaultdict(list)
        for event in failed:
            key = getattr(event, key_name)
            if key:
                groups[key].append(event)
        for key, group in groups.items():
            for run in _bursts(group, rules.failed_logins, rules.failed_window):
                found.append(_anomaly(FAILED_LOGINS, run, **{key_name: key}))
    found.extend(_sprays(failed, rules))
    found.extend(_new_account_grants(session, events, rules))
    found.sort(key=lambda a: (a.start, a.kind))
    return found


def _sprays(failed: Sequence[AuditEvent], rules: AnomalyRules) -> list[Anomaly]:
    """Failed logins spread over many accounts from one address, or over many addresses on one
    account. Unknown usernames name no account: they count for neither spread."""
    found: list[Anomaly] = []
    kinds = (
        (LOGIN_SPRAY, "client_address", "object_id", rules.spray_accounts),
        (LOGIN_SWARM, "object_id", "client_address", rules.spray_addresses),
    )
    for kind, group_by, spread, threshold in kinds:
        groups: dict[str, list[AuditEvent]] = defaultdict(list)
        for event in failed:
            key, other = getattr(event, group_by), getattr(event, spread)
            if key and other:
                groups[key].append(event)

        def distinct(events: Sequence[AuditEvent], spread: str = spread) -> int:
            return len({getattr(e, spread) for e in events})

        for key, group in groups.items():
            for run in _bursts(group, threshold, rules.spray_window, distinct):
                flag = _anomaly(kind, run, **{group_by: key})
                if kind == LOGIN_SPRAY:  # many accounts: none of them is "who"
                    flag = replace(flag, actor_id=None, actor_name=None, unit_code=None)
                found.append(flag)
    return found


def _not_assigned(session: Session, events: Sequence[AuditEvent]) -> list[Anomaly]:
    """Opens by role ``officer`` of a tip whose assignee, at that moment, was someone else."""
    opens = [
        e
        for e in events
        if e.action == actions.TIP_OPEN and e.actor_role == Role.OFFICER and e.object_id
    ]
    if not opens:
        return []
    tip_ids = {e.object_id for e in opens}
    # Every assignment of these tips up to the last open, whoever made it and whatever the
    # filters: a commander's ASSIGN decides whether an officer's open is flagged.
    assigns = list(
        session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == actions.ASSIGN,
                AuditEvent.object_id.in_(tip_ids),
                AuditEvent.seq < opens[-1].seq,
            )
        )
    )
    ever_assigned = {e.object_id for e in assigns}
    assignee = aliased(Officer)
    current = {
        tip_id: officer_id
        for tip_id, officer_id in session.execute(
            select(Tip.public_id, assignee.public_id)
            .join(assignee, Tip.assignee_id == assignee.id)
            .where(Tip.public_id.in_(tip_ids))
        )
    }
    holder: dict[str, str | None] = {}
    found: list[Anomaly] = []
    for event in sorted([*assigns, *opens], key=lambda e: e.seq):
        tip_id = event.object_id or ""
        if event.action == actions.ASSIGN:
            holder[tip_id] = event.detail.get("assignee")
            continue
        who = holder.get(tip_id) if tip_id in ever_assigned else current.get(tip_id)
        if who is not None and who != event.actor_id:
            found.append(_anomaly(NOT_ASSIGNED_OPEN, [event], object_id=tip_id))
    return found


def _new_account_grants(
    session: Session, events: Sequence[AuditEvent], rules: AnomalyRules
) -> list[Anomaly]:
    """GRANT events whose account was created (ACCOUNT_CREATE) shortly before."""
    grants = [e for e in events if e.action == actions.GRANT and e.object_id]
    if not grants:
        return []
    created = dict(
        session.execute(
            select(AuditEvent.object_id, func.min(AuditEvent.at))
            .where(
                AuditEvent.action == actions.ACCOUNT_CREATE,
                AuditEvent.object_id.in_({e.object_id for e in grants}),
            )
            .group_by(AuditEvent.object_id)
        ).all()
    )
    found = []
    for event in grants:
        made = created.get(event.object_id)
        if made is not None and event.at - made <= rules.new_account_grant:
            found.append(_anomaly(NEW_ACCOUNT_GRANT, [event], object_id=event.object_id))
    return found
