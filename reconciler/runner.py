"""`reconciler run`: wires the watch loops, the work queue, N workers and the HTTP server.

Exactly one reconciler may drive a state backend at a time: two would run the same
stacks concurrently. With `--leader-elect`, any number may run and only the holder of a
Lease reconciles (leader.py); the others serve /healthz and wait. Without it, run one
replica with the Recreate strategy. On one machine, a lock file in the state directory
makes a second reconciler on the same directory refuse to start.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Final, TextIO

from reconciler.backend_locks import HolderCheck, local_identity
from reconciler.driver import Driver, DriverConfig
from reconciler.executor import Executor, Outcome
from reconciler.fingerprint import fingerprint_key
from reconciler.http import serve
from reconciler.kube import LEASE_TIMEOUT_S, ApiUnavailable, Gateway, Kind, load_api_client
from reconciler.leader import Elector
from reconciler.memory import pin_mmap_threshold
from reconciler.metrics import Metrics
from reconciler.program import ClusterAccess
from reconciler.queue import Backoff, ShutDown, WorkQueue
from reconciler.settings import Settings, SettingsError
from reconciler.stale_locks import PodFacts, pod_facts
from reconciler.vocabulary import LABEL_PASSWORD_SECRET
from reconciler.watch import OWNED_SELECTOR, BackupIndex, Health, Key, WatchLoop

log = logging.getLogger(__name__)

LOCK_FILE: Final = ".reconciler.lock"
WORK_DIR: Final = "workspace"
# The exit status after the Lease was lost: the pod restarts and becomes a candidate.
EXIT_LOST_LEASE: Final = 3
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


def resolve_passphrase(settings: Settings, gateway: Gateway | None) -> str:
    """The state passphrase: from its Secret (through `gateway`), or its variable."""
    source = settings.passphrase
    if source.secret is not None:
        if gateway is None:
            raise SettingsError("--passphrase-secret: no cluster to read the Secret from")
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


def make_driver(
    settings: Settings,
    passphrase: str,
    gateway: Gateway | None = None,
    *,
    work_dir: Path | None = None,
    engine_env: Mapping[str, str] | None = None,
) -> Driver:
    """With a gateway, in a pod ($POD_NAME, $POD_NAMESPACE), stack locks left by this
    operator's other pods can be judged too (stale_locks.py)."""
    identity = local_identity(os.environ.get("POD_NAMESPACE"), os.environ.get("POD_NAME"))
    read_pod = partial(_pod_facts, gateway) if gateway is not None else None
    return Driver(
        DriverConfig(
            project_name=settings.project_name,
            backend_url=settings.backend_url,
            work_dir=work_dir or settings.state_dir / WORK_DIR,
            cluster=ClusterAccess(kubeconfig=_kubeconfig_path(settings)),
            passphrase=passphrase,
            lock_judge=HolderCheck(identity, read_pod),
            engine_env=dict(engine_env or {}),
        )
    )


def _pod_facts(gateway: Gateway, namespace: str, name: str) -> PodFacts | None:
    try:
        return pod_facts(gateway.get_pod(namespace, name))
    except ApiUnavailable:
        return None


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


class Probe:
    """What /healthz answers; replaced as the process goes from following to leading."""

    def __init__(self, check: Callable[[], tuple[bool, str]]) -> None:
        self._check = check

    def set(self, check: Callable[[], tuple[bool, str]]) -> None:
        self._check = check

    def __call__(self) -> tuple[bool, str]:
        return self._check()


def run(settings: Settings) -> int:
    if not pin_mmap_threshold():
        log.info("no glibc mallopt: large buffers may stay resident", extra={"phase": "start"})
    stopping = threading.Event()
    on_stop: list[Callable[[], None]] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"phase": "stop", "signal": signum})
        stopping.set()
        for callback in list(on_stop):
            callback()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    election = settings.leader_election
    if election is None:
        # The state directory's lock first: a second reconciler on it says why it stops.
        with single_instance(settings.state_dir):
            gateway = Gateway(load_api_client(settings.kubeconfig))
            metrics = Metrics()
            probe = Probe(lambda: (False, "starting"))
            server = serve(settings.http_address, probe, metrics)
            try:
                return _reconcile(settings, gateway, metrics, probe, stopping, on_stop)
            finally:
                server.shutdown()
    gateway = Gateway(load_api_client(settings.kubeconfig))
    metrics = Metrics()
    elector = Elector(gateway, election.namespace, election.lease_name, election.identity)

    def follower_health() -> tuple[bool, str]:
        return True, f"following: the lease is held by {elector.holder or 'nobody'}"

    # A follower serves /healthz (and /metrics) while it waits.
    probe = Probe(follower_health)
    server = serve(settings.http_address, probe, metrics)
    # Renewing goes on after a SIGTERM, while the workers finish their current keys.
    done = threading.Event()
    renewing: threading.Thread | None = None
    try:
        if not elector.acquire(stopping):
            return 0
        renewing = elector.keep(done, _lost_the_lease)
        with single_instance(settings.state_dir):
            return _reconcile(settings, gateway, metrics, probe, stopping, on_stop)
    finally:
        done.set()
        server.shutdown()
        if renewing is not None:
            # A renewal still under way would take the Lease back after the release;
            # one that does not end in time leaves the Lease to expire instead.
            renewing.join(timeout=2 * LEASE_TIMEOUT_S)
            if not renewing.is_alive():
                elector.release()


def _lost_the_lease(reason: str) -> None:
    """Ends the process at once: a successor may already be taking over, and nothing
    this process would do next (an engine run, a status write) may run beside it. What
    was under way is recovered by the successor as after a crash."""
    log.error("lost the leadership; exiting", extra={"phase": "leader", "reason": reason})
    logging.shutdown()
    os._exit(EXIT_LOST_LEASE)


def _reconcile(
    settings: Settings,
    gateway: Gateway,
    metrics: Metrics,
    probe: Probe,
    stopping: threading.Event,
    on_stop: list[Callable[[], None]],
) -> int:
    passphrase = resolve_passphrase(settings, gateway)
    driver = make_driver(settings, passphrase, gateway)
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

    probe.set(healthy)

    def shut_down() -> None:
        for loop in loops:
            loop.stop()
        queue.shut_down()

    on_stop.append(shut_down)
    if stopping.is_set():  # a signal during the start: nothing more is started
        shut_down()
        return 0
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
