"""Signed Zalo webhooks at a steady rate from a few client threads, retried as Zalo retries.

Each tip has its own ``msg_id``; every fifth one comes from a user who already sent one, so
follow-ups and the informant's reply address are exercised too. A delivery that gets anything
but a 200 (a refusal, a timeout, a refused connection) is sent again, same bytes, after
``retry_after`` seconds; Zalo does the same on its own schedule (30 s, 5 min, …), compressed
here so the test stays short. A tip is *acknowledged* when one of its deliveries got a 200.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.conftest import COMMUNE_OA, PROVINCE_OA
from tests.zalo_events import event, signed_headers

FIRST_USER = 2468458835296000000


@dataclass
class Attempt:
    started: float
    ended: float
    status: int | None  # None: no HTTP answer (connection refused, timeout)


@dataclass
class Tip:
    index: int
    msg_id: str
    user: str
    oa: str
    raw: bytes
    attempts: list[Attempt] = field(default_factory=list)
    acknowledged_at: float | None = None


def make_tips(count: int) -> list[Tip]:
    tips = []
    for i in range(count):
        # Every fifth tip is a second message from the sender of three tips ago.
        sender = i - 3 if i % 5 == 4 else i
        user = str(FIRST_USER + sender)
        oa = PROVINCE_OA if sender % 10 == 7 else COMMUNE_OA
        msg_id = f"f{i:019d}"
        text = f"Tin báo {i}: có người tụ tập đánh bạc ăn tiền ban đêm, xin công an kiểm tra"
        raw = event(text=text, msg_id=msg_id, user=user, oa=oa, timestamp=str(1718000100000 + i))
        tips.append(Tip(i, msg_id, user, oa, raw))
    return tips


class Stream:
    """Sends ``tips`` at ``rate`` per second from ``threads`` clients, retrying until a 200."""

    def __init__(
        self,
        url: str,
        tips: list[Tip],
        *,
        rate: float,
        threads: int = 6,
        retry_after: float = 0.5,
        request_timeout: float = 5.0,
    ) -> None:
        self.url = url + "/zalo/webhook"
        self.tips = tips
        self.rate = rate
        self.threads = threads
        self.retry_after = retry_after
        self.request_timeout = request_timeout
        self._due: list[tuple[float, int]] = []
        self._cond = threading.Condition()
        self._left = len(tips)
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self._due = [(self.started + i / self.rate, i) for i in range(len(self.tips))]
        heapq.heapify(self._due)
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._workers.append(thread)

    def _next(self) -> int | None:
        with self._cond:
            while not self._stop.is_set():
                if self._left == 0:
                    return None
                if self._due:
                    due, index = self._due[0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self._due)
                        return index
                    self._cond.wait(min(wait, 0.05))
                else:
                    self._cond.wait(0.05)
            return None

    def _run(self) -> None:
        with httpx.Client(timeout=self.request_timeout) as client:
            while (index := self._next()) is not None:
                tip = self.tips[index]
                started = time.monotonic()
                status: int | None
                try:
                    status = client.post(
                        self.url, content=tip.raw, headers=signed_headers(tip.raw)
                    ).status_code
                except httpx.HTTPError:
                    status = None
                ended = time.monotonic()
                tip.attempts.append(Attempt(started, ended, status))
                with self._cond:
                    if status == 200:
                        tip.acknowledged_at = ended
                        self._left -= 1
                    else:
                        heapq.heappush(self._due, (ended + self.retry_after, index))
                    self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        """True when every tip was acknowledged within ``timeout``; stops the clients."""
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(deadline - time.monotonic(), 0))
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._workers:
            thread.join(10)
        return self._left == 0

    @property
    def last_sent(self) -> float:
        return max((a.started for t in self.tips for a in t.attempts), default=self.started)

    def summary(self) -> dict[str, object]:
        attempts = [a for t in self.tips for a in t.attempts]
        statuses = Counter("no answer" if a.status is None else str(a.status) for a in attempts)
        return {
            "sent": sum(1 for t in self.tips if t.attempts),
            "acknowledged": sum(1 for t in self.tips if t.acknowledged_at is not None),
            "retried": sum(1 for t in self.tips if len(t.attempts) > 1),
            "deliveries": len(attempts),
            "answers": dict(statuses),
        }
