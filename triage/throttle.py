"""Who waits after failed logins and recoveries (tipline.web.backoff): delays, never a lock.

Three counts slow a password guesser down, each by doubling delays:

- this account from this address (:data:`PAIR`): the address that fails waits, from the
  fourth failure, 2 s, 4 s, 8 s … up to 15 minutes;
- this address on any account (:data:`ADDRESS`): a spray across accounts from one place;
- this account from every address (:data:`ACCOUNT`), checked only for an address that has
  itself failed on the account: many addresses guessing together slow each other down, while
  an address that has not failed — the officer at their desk — passes.

So someone else's failures never keep the right password and code out: they are counted
against the addresses they come from. One case is left: an officer behind the attacker's own
address (a station's NAT). For it, a browser that has logged in to the account before carries
a *known-browser* cookie (signed, bound to the account, 30 days, sent to /login only): from
that browser only its own failures on that account count (:data:`PAIR`), whatever its address
did. The auditor sees sprays either way (tipline.audit.query).

A try while a wait runs is answered 429 with the seconds left (``Retry-After``), costs no
Argon2id run and counts for nothing. The username is counted as typed (lower-cased), whether
or not the account exists, so the delays say nothing about which accounts do. A successful
login forgets its address's failures on that account.

Recovery (/login/recover) has its own counts and never waits for the login's: an officer
slowed down, by their own failures or by anyone's, can always recover the account with the
recovery code and the authenticator; a successful recovery forgets that address's failed
logins on the account.

Addresses are counted as :func:`tipline.web.limits.address_group` makes them: an IPv6 client
is its /64.
"""

from __future__ import annotations

from dataclasses import dataclass

from tipline.runtime import Runtime
from tipline.web.backoff import Backoff, Failures, Scope

FIFTEEN_MINUTES = 15 * 60.0
PAIR = Backoff(free=3, first=2.0, longest=FIFTEEN_MINUTES)
ADDRESS = Backoff(free=10, first=2.0, longest=FIFTEEN_MINUTES)
ACCOUNT = Backoff(free=10, first=2.0, longest=FIFTEEN_MINUTES)
RECOVERY = Backoff(free=3, first=2.0, longest=FIFTEEN_MINUTES)


def _failures(rt: Runtime) -> Failures:
    return Failures(rt.redis, rt.config.secret_key.encode(), rt.clock)


@dataclass(frozen=True)
class LoginAttempt:
    """A login (or recovery) try: the username as typed, the client's address group, and the
    browser's id if its known-browser cookie is this account's."""

    username: str
    address: str
    browser: str | None = None

    def _browser(self) -> list[Scope]:
        if self.browser is None:
            return []
        return [Scope(("login-browser", self.username, self.browser), PAIR)]

    def _pair(self) -> Scope:
        return Scope(("login", self.username, self.address), PAIR)

    def _address(self) -> Scope:
        return Scope(("login-address", self.address), ADDRESS)

    def _account(self) -> Scope:
        return Scope(("login-account", self.username), ACCOUNT)

    def _recovery(self) -> Scope:
        return Scope(("recovery", self.username, self.address), RECOVERY)

    def wait(self, rt: Runtime) -> int:
        """Seconds before this login may be tried (0: now)."""
        failures = _failures(rt)
        if self.browser is not None:  # only this browser's own failures on the account
            return failures.wait(self._browser())
        pair = self._pair()
        scopes = [pair, self._address()]
        if failures.count(pair) > 0:  # an address that failed on this account
            scopes.append(self._account())
        return failures.wait(scopes)

    def failed(self, rt: Runtime) -> None:
        _failures(rt).add([self._pair(), self._address(), self._account(), *self._browser()])

    def succeeded(self, rt: Runtime) -> None:
        _failures(rt).clear([self._pair(), *self._browser()])

    def recovery_wait(self, rt: Runtime) -> int:
        return _failures(rt).wait([self._recovery()])

    def recovery_failed(self, rt: Runtime) -> None:
        _failures(rt).add([self._recovery()])

    def recovered(self, rt: Runtime) -> None:
        _failures(rt).clear([self._recovery(), self._pair(), *self._browser()])
