"""`reconciler run`: wires the watch loops, the work queue, N workers and the HTTP server.

Exactly one reconciler may drive a state backend at a time: two would run the same
stacks concurrently. In a cluster, run it as a Deployment with one replica and the
Recreate strategy. On one machine, a lock file in the state directory makes a second
reconciler on the same directory refuse to start.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Final, TextIO

from reconciler.driver import Driver, DriverConfig
from reconciler.executor import Executor, Outcome
from reconciler.fingerprint import fingerprint_key
from reconciler.http import serve
from reconciler.kube import Gateway, Kind, load_api_client
from reconciler.memory import pin_mmap_threshold
from reconciler.metrics import Metrics
from reconciler.program import ClusterAccess
from reconciler.queue import Backoff, ShutDown, WorkQueue
from reconciler.settings import Settings, SettingsError
from reconciler.vocabulary import LABEL_PASSWORD_SECRET
from reconciler.watch import OWNED_SELECTOR, BackupIndex, Health, Key, WatchLoop

log = logging.getLogger(__name__)

LOCK_FILE: Final = ".reconciler.lock"
WORK_DIR: Final = "workspace"
# Owned objects only wake instances; their loops re-list rarely.
OWNED_RESYNC_S: Final = 3600.0


class AlreadyRunning(Exception):
    pass


@contextmanager
def single_instance(state_dir: Path) -> Iterator[None]:
    """Holds an exclusive lock on `<state_dir>/.reconciler.lock` while running."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle: TextIO = (state_dir / LOCK_FILE).open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(
                f"another reconciler holds {state_dir / LOCK_FILE}; only one may run"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


def resolve_passphrase(settings: Settings, gateway: Gateway) -> str:
    source = settings.passphrase
    if source.secret is not None:
        ref = source.secret
        value = gateway.secret_value(ref.namespace, ref.name, ref.key)
        if not value:
            raise SettingsError(
                f"--passphrase-secret: Secret {ref.namespace}/{ref.name} has no key {ref.key!r}"
            )
        return value
    value = os.environ.get(source.env_var)
    if not value:
        raise SettingsError(
            f"no state passphrase: set ${source.env_var} or give --passphrase-secret"
        )
    return value


def make_driver(settings: Settings, passphrase: str) -> Driver:
    return Driver(
        DriverConfig(
            project_name=settings.project_name,
            backend_url=settings.backend_url,
            work_dir=settings.state_dir / WORK_DIR,
            cluster=ClusterAccess(kubeconfig=_kubeconfig_path(settings)),
            passphrase=passphrase,
        )
    )


def _kubeconfig_path(settings: Settings) -> str | None:
    # The provider reads $KUBECONFIG itself; pass a path only when one was given.
    return settings.kubeconfig or os.environ.get("KUBECONFIG") or None


@dataclass
class Workers:
    """What each worker runs now and since when, for /healthz and the logs."""

    stuck_after_s: float
    _running: dict[str, tuple[Key, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, worker: str, key: Key) -> None:
        with self._lock:
            self._running[worker] = (key, time.monotonic())

    def finished(self, worker: str) -> None:
        with self._lock:
            self._running.pop(worker, None)

    def stuck(self) -> list[tuple[str, Key, float]]:
        now = time.monotonic()
        with self._lock:
            return [
                (worker, key, now - since)
                for worker, (key, since) in self._running.items()
                if now - since > self.stuck_after_s
            ]


def run(settings: Settings) -> int:
    if not pin_mmap_threshold():
        log.info("no glibc mallopt: large buffers may stay resident", extra={"phase": "start"})
    with single_instance(settings.state_dir):
        gateway = Gateway(load_api_client(settings.kubeconfig))
        passphrase = resolve_passphrase(settings, gateway)
        driver = make_driver(settings, passphrase)
        driver.repair_backend()
        wrong = driver.check_passphrase()
        if wrong is not None:
            # Every instance would stall on it; saying so once, loudly, is better.
            raise SettingsError(
                f"the state passphrase does not decrypt the existing stacks ({wrong}); "
                "refusing to start. Give the passphrase the stacks were made with"
            )
        toolchain = driver.toolchain_versions()
        log.info("starting", extra={"phase": "start", "toolchain": toolchain.to_dict()})
        metrics = Metrics()
        backups = BackupIndex()
        executor = Executor(
            gateway,
            driver,
            toolchain,
            metrics,
            cluster_domain=settings.cluster_domain,
            fingerprint_key=fingerprint_key(passphrase),
            selector=settings.selector,
            host_path_root=settings.host_path_root,
            transfer_image=settings.transfer_image,
            requested_backups=backups.open_for,
        )
        queue: WorkQueue[Key] = WorkQueue()
        backoff: Backoff[Key] = Backoff(settings.backoff_base_s, settings.backoff_max_s)
        health = Health(stale_after_s=2 * settings.watch_timeout_s + 60)
        workers_state = Workers(settings.stuck_after_s)
        metrics.watch_queue(queue)
        loops = _watch_loops(settings, gateway, queue, health, backups)

        def healthy() -> tuple[bool, str]:
            stale, stuck = health.stale_loops(), workers_state.stuck()
            if not health.healthy():
                return False, f"watch loops not running: {', '.join(stale) or 'none started'}"
            if stuck:
                worker, key, seconds = stuck[0]
                return False, f"{worker} stuck on {key[0]}/{key[1]} for {seconds:.0f}s"
            return True, "ok"

        server = serve(settings.http_address, healthy, metrics)
        stopping = threading.Event()

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("stopping", extra={"phase": "stop", "signal": signum})
            stopping.set()
            for loop in loops:
                loop.stop()
            queue.shut_down()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        for loop in loops:
            # Daemons: a watch blocked on the server is simply abandoned at exit.
            threading.Thread(target=loop.run, name=loop.name, daemon=True).start()
        workers = [
            threading.Thread(
                target=_work,
                args=(queue, executor, backoff, workers_state, f"worker-{index}"),
                name=f"worker-{index}",
                daemon=True,
            )
            for index in range(settings.workers)
        ]
        for worker in workers:
            worker.start()
        stopping.wait()
        # An engine run in progress is not interrupted: a worker finishes its current key.
        for worker in workers:
            worker.join()
        server.shutdown()
        return 0


def _watch_loops(
    settings: Settings,
    gateway: Gateway,
    queue: WorkQueue[Key],
    health: Health,
    backups: BackupIndex,
) -> list[WatchLoop]:
    loops: list[WatchLoop] = []
    for namespace in settings.namespaces or (None,):
        for kind, selector, resync in (
            (Kind.MYSQL, settings.label_selector, settings.resync_period_s),
            # Every MySQLBackup: the ones people create carry no label of the operator's.
            (Kind.BACKUP, "", settings.resync_period_s),
            (Kind.CLAIM, OWNED_SELECTOR, OWNED_RESYNC_S),
            (Kind.POD, OWNED_SELECTOR, OWNED_RESYNC_S),
            (Kind.JOB, OWNED_SELECTOR, OWNED_RESYNC_S),
            (Kind.SECRET, f"{LABEL_PASSWORD_SECRET}=true", OWNED_RESYNC_S),
        ):
            loops.append(
                WatchLoop(
                    gateway,
                    queue,
                    health,
                    namespace=namespace,
                    resync_period_s=resync,
                    watch_timeout_s=settings.watch_timeout_s,
                    backoff=Backoff(settings.backoff_base_s, settings.backoff_max_s),
                    kind=kind,
                    label_selector=selector,
                    backups=backups,
                    instances_in=lambda namespace: instances_in(loops, namespace),
                )
            )
    return loops


def instances_in(loops: list[WatchLoop], namespace: str) -> list[Key]:
    """The MySQL objects of a namespace, as the MySQL loops last listed or saw them."""
    return [
        key
        for loop in loops
        if loop.kind == Kind.MYSQL
        for key in list(loop.intents)
        if key[0] == namespace
    ]


def _work(
    queue: WorkQueue[Key],
    executor: Executor,
    backoff: Backoff[Key],
    workers: Workers,
    name: str,
) -> None:
    while True:
        try:
            key = queue.get()
        except ShutDown:
            return
        if key is None:
            continue
        workers.started(name, key)
        try:
            result = executor.reconcile(key)
            if result.outcome is Outcome.RETRY:
                queue.add_after(key, backoff.next_delay(key), backoff=True)
            else:
                backoff.forget(key)
                if result.requeue_after_s is not None:
                    queue.add_after(key, result.requeue_after_s, backoff=False)
        except Exception:
            # A bug must not kill the worker; the key is retried with backoff.
            log.exception("reconcile crashed", extra={"instance": f"{key[0]}/{key[1]}"})
            queue.add_after(key, backoff.next_delay(key), backoff=True)
        finally:
            workers.finished(name)
            queue.done(key)
