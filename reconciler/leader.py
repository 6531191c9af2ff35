"""Leader election for `reconciler run --leader-elect`: the candidate loop around the
rules in `leases.py`.

`acquire` blocks until this process holds the Lease (or it is asked to stop); `keep`
renews it in a daemon thread and calls `on_lost` once when it can no longer count itself
leader: a renewal found another holder, or none succeeded within the renew deadline.
The caller ends the process then, so a run the successor may repeat is never continued
beside it. `release` gives the Lease up at a clean shutdown, so the successor need not
wait out a whole duration.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from reconciler.kube import ApiUnavailable, Conflict, Gateway
from reconciler.leases import (
    LEASE_DURATION_S,
    RENEW_DEADLINE_S,
    RETRY_PERIOD_S,
    LeaseRecord,
    Move,
    Sighting,
    lease_manifest,
    next_move,
    released_manifest,
)

log = logging.getLogger(__name__)

# How often the holder checks its renew deadline.
DEADLINE_CHECK_S: Final = 0.5


class Elector:
    def __init__(
        self,
        gateway: Gateway,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration_s: int = LEASE_DURATION_S,
        renew_deadline_s: float = RENEW_DEADLINE_S,
        retry_period_s: float = RETRY_PERIOD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < renew_deadline_s < duration_s:
            raise ValueError("the renew deadline must be shorter than the lease duration")
        self.gateway = gateway
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration_s = duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_period_s = retry_period_s
        self.clock = clock
        self.holder = ""  # the holder last read, for /healthz and the logs
        self._sighting: Sighting | None = None
        self._renewed_at: float | None = None

    @property
    def where(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    def try_once(self) -> bool:
        """One read and, where the rules allow, one write; True when this process holds
        the Lease afterwards."""
        started = self.clock()
        try:
            found = self.gateway.get_lease(self.namespace, self.name)
            record = None if found is None else LeaseRecord.parse(found)
            move, self._sighting = next_move(record, self.identity, self._sighting, started)
            if record is not None:
                self.holder = record.holder
            if move is Move.WAIT:
                return False
            manifest = lease_manifest(
                self.name,
                self.identity,
                datetime.now(UTC),
                record,
                duration_s=self.duration_s,
            )
            if move is Move.CREATE:
                if not self.gateway.create_lease(self.namespace, manifest):
                    return False
            else:
                self.gateway.replace_lease(self.namespace, self.name, manifest)
        except Conflict:
            return False  # another candidate wrote first; read again next period
        except ApiUnavailable as error:
            log.warning("cannot reach the lease", extra={"phase": "leader", "error": str(error)})
            return False
        if move is Move.TAKE and self.holder:
            log.info(
                "took over the lease",
                extra={"phase": "leader", "lease": self.where, "from": self.holder},
            )
        self.holder = self.identity
        # Measured from before the read: the Lease cannot have been renewed later than that.
        self._renewed_at = started
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Blocks until this process leads (True) or `stop` is set (False)."""
        log.info(
            "waiting to lead", extra={"phase": "leader", "lease": self.where, "id": self.identity}
        )
        while not stop.is_set():
            if self.try_once():
                log.info("leading", extra={"phase": "leader", "lease": self.where})
                return True
            stop.wait(self.retry_period_s)
        return False

    def leading(self) -> bool:
        """Whether the last successful renewal is younger than the renew deadline."""
        renewed = self._renewed_at
        return renewed is not None and self.clock() - renewed < self.renew_deadline_s

    def keep(self, stop: threading.Event, on_lost: Callable[[str], None]) -> threading.Thread:
        """Renews the Lease every retry period until `stop` is set; calls `on_lost` once
        with the reason when leadership ends first. The deadline is watched by a thread of
        its own, so a renewal stuck in a call cannot keep this process leading past it.
        Returns the renewing thread."""
        lost = threading.Event()

        def lose(reason: str) -> None:
            if not lost.is_set():
                lost.set()
                on_lost(reason)

        def renew() -> None:
            while not stop.wait(self.retry_period_s) and not lost.is_set():
                if not self.try_once() and self.holder and self.holder != self.identity:
                    lose(f"{self.where} is now held by {self.holder}")

        def watch_deadline() -> None:
            while not stop.wait(DEADLINE_CHECK_S) and not lost.is_set():
                if not self.leading():
                    lose(f"{self.where} not renewed for {self.renew_deadline_s:.0f}s")

        threading.Thread(target=watch_deadline, name="lease-deadline", daemon=True).start()
        renewing = threading.Thread(target=renew, name="lease", daemon=True)
        renewing.start()
        return renewing

    def release(self) -> None:
        """Gives the Lease up if this process still holds it; a failure only means the
        successor waits one duration."""
        try:
            found = self.gateway.get_lease(self.namespace, self.name)
            if found is None:
                return
            record = LeaseRecord.parse(found)
            if record.holder != self.identity:
                return
            self.gateway.replace_lease(
                self.namespace, self.name, released_manifest(self.name, record, datetime.now(UTC))
            )
            log.info("released the lease", extra={"phase": "leader", "lease": self.where})
        except (Conflict, ApiUnavailable) as error:
            log.warning(
                "could not release the lease", extra={"phase": "leader", "error": str(error)}
            )
