"""The Pulumi driver: the only module that calls the Automation API.

One stack per MySQL object, named `<namespace>.<name>` (neither part can contain a dot),
in one project, in a DIY backend (a directory by default). Secrets use the passphrase
provider; the passphrase reaches the CLI only through the workspace's environment and is
never logged or put into an exception message.

Errors come out as `StackError` with a `FailureKind`, so that the caller can tell a bad
spec from a transient failure from a stuck stack. A stack left
locked or with pending operations by a crash is recovered here before the next run: a
DIY lock is removed only when its holder is provably gone (stale_locks.py), else the run
stops and names the holder; pending operations are dropped from the checkpoint with an
export/import.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import yaml
from pulumi import automation as auto

# The one private name used: the Stack constructor's mode, which the package does not
# re-export. The driver builds its own Stack subclass (to take a run's summary from the
# engine's events instead of a `stack history` CLI run), and the SDK's public
# create/select helpers always return the base class. Guarded by a unit test
# (test_driver_helpers.py).
from pulumi.automation._stack import StackInitMode

from reconciler import backend_files, backend_locks
from reconciler.backend_files import Recorded, deployed_kubernetes_objects, drop_pending_operations
from reconciler.backend_locks import local_identity
from reconciler.desired import Desired
from reconciler.engine_events import RunTimings, StepClock
from reconciler.history import HistoryEntry
from reconciler.history import entry as history_entry
from reconciler.observation import StackState
from reconciler.program import ClusterAccess, build_program
from reconciler.runs import FailureKind, RunResult, StackError, stack_name
from reconciler.s3 import S3Error
from reconciler.stale_locks import StackLock, Verdict
from reconciler.status import ToolchainVersions

log = logging.getLogger(__name__)

# The engine's own logs are not needed: results come back as summaries and events.
ENGINE_ENV: Final = {
    "PULUMI_SKIP_UPDATE_CHECK": "true",
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
}
KUBERNETES_PREFIX: Final = backend_files.KUBERNETES_PREFIX

# stderr fragments of failures worth retrying: the API server or the network hiccuped.
TRANSIENT_PATTERNS: Final = (
    r"connection refused",
    r"connection reset",
    r"i/o timeout",
    r"context deadline exceeded",
    r"TLS handshake timeout",
    r"the server is currently unable to handle the request",
    r"the server was unable to return a response",
    r"\b50[0234]\b",
    r"\b409\b",
    r"Too Many Requests",
    r"the object has been modified",
    r"etcdserver",
)
# stderr fragments of failures that only a spec change fixes.
SPEC_PATTERNS: Final = (r"\bis invalid\b", r"\b422\b", r"admission webhook .* denied")


@dataclass(frozen=True)
class PlannedStep:
    op: str
    type: str
    name: str


@dataclass(frozen=True)
class Plan:
    change_summary: Mapping[str, int]
    steps: tuple[PlannedStep, ...]
    stack_existed: bool

    @property
    def has_changes(self) -> bool:
        return any(op != "same" and count > 0 for op, count in self.change_summary.items())


@dataclass(frozen=True)
class DriverConfig:
    project_name: str
    backend_url: str
    work_dir: Path  # scratch for the workspace; the state lives in the backend
    cluster: ClusterAccess
    # repr=False: settings objects end up in logs.
    passphrase: str = field(repr=False)
    # Whether a stack lock's holder is provably gone; by default only this host's
    # processes are looked at (backend_locks.HolderCheck).
    lock_judge: Callable[[StackLock], Verdict] | None = field(default=None, compare=False)
    # More variables for every CLI run (previews hide the cluster this way: cli.py).
    engine_env: Mapping[str, str] = field(default_factory=dict)


def translate(error: auto.CommandError) -> StackError:
    """The one place a CLI failure becomes a `StackError` (kind and a short message)."""
    return StackError(classify(str(error)), summarize_error(str(error)))


def classify(stderr: str) -> FailureKind:
    if any(re.search(pattern, stderr, re.IGNORECASE) for pattern in SPEC_PATTERNS):
        return FailureKind.SPEC
    if any(re.search(pattern, stderr, re.IGNORECASE) for pattern in TRANSIENT_PATTERNS):
        return FailureKind.TRANSIENT
    return FailureKind.FAILED


# Lines every failed run prints, which say nothing about why.
GENERIC_ERRORS: Final = (
    r"error: update failed",
    r"Resource monitor has terminated",
    r"^\d+ errored",
    r"\*\*failed\*\*",
    r"running error:",
)


def summarize_error(stderr: str, limit: int = 600) -> str:
    """The engine's specific diagnostic lines, short enough for a condition message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    specific = [line for line in errors if not any(re.search(p, line) for p in GENERIC_ERRORS)]
    text = " | ".join(dict.fromkeys(specific or errors or lines))
    return text[:limit] if len(text) > limit else text


def _quiet(_line: str) -> None:
    """Engine output is not logged: it can carry resource details users did not ask for."""


def _noop_program() -> None:
    """Destroy and stack removal need a program only to select the stack."""


class _RunEvents:
    """The engine's events of one `up` or `destroy`: steps on Kubernetes objects go to a
    StepClock, and the summary event is kept for `summary`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.started = datetime.now(UTC)
        self.steps = StepClock()
        self._changes: auto.OpMap | None = None

    def __call__(self, event: auto.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            if meta.type.startswith(KUBERNETES_PREFIX):
                self.steps.step_started(meta.urn)
        elif event.res_outputs_event is not None:
            self.steps.step_ended(event.res_outputs_event.metadata.urn)
        elif event.res_op_failed_event is not None:
            self.steps.step_ended(event.res_op_failed_event.metadata.urn)
        elif event.summary_event is not None:
            self._changes = dict(event.summary_event.resource_changes or {})

    def summary(self) -> auto.UpdateSummary | None:
        """A succeeded run's summary (a failed one raised before it is asked for), or None
        when the engine sent no summary event."""
        if self._changes is None:
            return None
        return auto.UpdateSummary(
            kind=self.kind,
            start_time=self.started,
            message="",
            environment={},
            config={},
            result="succeeded",
            end_time=datetime.now(UTC),
            resource_changes=self._changes,
        )


class _Stack(auto.Stack):
    """A stack that can take a run's summary from the engine's events.

    `up` and `destroy` read the summary with `stack history` after the run: a CLI run. A
    DIY backend numbers no updates, so the events hold all the summary the driver uses;
    `events` is set for those backends only, during one run, and without a summary event
    the CLI is asked. The events are all in by then: the CLI closes its event stream and
    waits for the SDK's answer before it exits.
    """

    events: _RunEvents | None = None

    def info(self, show_secrets: bool = True) -> auto.UpdateSummary | None:
        summary = self.events.summary() if self.events is not None else None
        return summary if summary is not None else super().info(show_secrets)


class _Workspace(auto.LocalWorkspace):
    """A LocalWorkspace without two CLI round trips per run that the driver never needs.

    - `Stack.up` reads the stack's outputs after every run: two CLI runs, one of them
      decrypting with the passphrase. The driver reads none of them (the program's
      outputs are for people running `pulumi stack output`), so this workspace has none.
    - Selecting a stack known to exist is skipped: every command the driver runs names its
      stack with `--stack`, so selecting it would only record a default for the workspace.
    """

    def __init__(self, stack_exists: Callable[[str], bool], **options: Any) -> None:
        super().__init__(**options)
        self._stack_exists = stack_exists

    def stack_outputs(self, stack_name: str) -> auto.OutputMap:  # noqa: ARG002 (base signature)
        return {}

    def select_stack(self, stack_name: str) -> None:
        if not self._stack_exists(stack_name):
            super().select_stack(stack_name)


class Driver:
    def __init__(self, config: DriverConfig) -> None:
        self.config = config
        config.work_dir.mkdir(parents=True, exist_ok=True)
        self._backend_directory = backend_files.backend_directory(config.backend_url)
        if self._backend_directory is not None:
            self._backend_directory.mkdir(parents=True, exist_ok=True)
        _write_project_file(config.work_dir, self._project_settings(config.backend_url))
        self._command: auto.PulumiCommand | None = None
        self._command_lock = threading.Lock()
        self._stack_template: backend_files.StackTemplate | None = None
        self._stack_template_sought = False
        self._lock_store = backend_locks.lock_store(config.backend_url, config.project_name)
        self._bucket = (
            self._lock_store if isinstance(self._lock_store, backend_locks.BucketBackend) else None
        )
        self._judge_lock = config.lock_judge or backend_locks.HolderCheck(local_identity())

    def _pulumi_command(self) -> auto.PulumiCommand:
        """One CLI handle for every workspace: each new one runs `pulumi version` to check it."""
        with self._command_lock:
            if self._command is None:
                self._command = auto.PulumiCommand()
            return self._command

    # -- stacks --------------------------------------------------------------------------

    def _project_settings(self, backend_url: str) -> auto.ProjectSettings:
        return auto.ProjectSettings(
            name=self.config.project_name,
            runtime="python",
            backend=auto.ProjectBackend(url=backend_url),
        )

    def _options(self, scratch_backend: Path | None = None) -> auto.LocalWorkspaceOptions:
        """Workspaces share the work directory and its project file, which __init__ wrote:
        a workspace given project settings would rewrite the file in place, and a CLI of
        another worker reading it meanwhile would find it empty. So workspaces only read
        it, and it is replaced in one step if it no longer holds these settings. A scratch
        backend gets a workspace of its own, in that directory."""
        if scratch_backend is None:
            work_dir, settings = self.config.work_dir, None
            ours = self._project_settings(self.config.backend_url)
            if _write_project_file(work_dir, ours):
                # Another process with other settings shares the work directory.
                log.warning("%s/Pulumi.yaml named other settings: rewritten", work_dir)
        else:
            url = f"file://{scratch_backend}"
            work_dir, settings = scratch_backend, self._project_settings(url)
        return auto.LocalWorkspaceOptions(
            work_dir=str(work_dir),
            project_settings=settings,
            secrets_provider="passphrase",
            env_vars={
                **ENGINE_ENV,
                **self.config.engine_env,
                "PULUMI_CONFIG_PASSPHRASE": self.config.passphrase,
            },
            pulumi_command=self._pulumi_command(),
        )

    def _stack(
        self, namespace: str, name: str, program: Callable[[], None], *, create: bool = True
    ) -> _Stack:
        stack = stack_name(namespace, name)
        try:
            workspace = _Workspace(
                self._stack_exists,
                program=program,
                **_workspace_kwargs(self._options()),
            )
            if not create or (self._bucket is not None and self._stack_exists(stack)):
                # An existing stack in a bucket is selected without a CLI run too.
                return _Stack(stack, workspace, StackInitMode.SELECT)
            if self._backend_directory is not None and self._checkpoint_file(stack) is None:
                # A directory backend keeps a file per stack, so none means a new stack:
                # write its files, or create it without the `stack select` that would
                # fail first.
                if self._write_new_stack(stack):
                    return _Stack(stack, workspace, StackInitMode.SELECT)
                try:
                    created = _Stack(stack, workspace, StackInitMode.CREATE)
                except auto.StackAlreadyExistsError:
                    pass
                else:
                    self._learn_stack_template(stack)
                    return created
            return _Stack(stack, workspace, StackInitMode.CREATE_OR_SELECT)
        except auto.StackNotFoundError:
            raise
        except auto.CommandError as error:
            raise translate(error) from None

    def _learn_stack_template(self, stack: str) -> None:
        """Keeps the files of the first stack the CLI created for copying (see
        backend_files.StackTemplate)."""
        if self._stack_template_sought or self._backend_directory is None:
            return
        self._stack_template_sought = True
        template = backend_files.stack_template(
            self._backend_directory, self.config.project_name, stack, self.config.work_dir
        )
        if template is None:
            log.info("new stacks are created by the CLI: %s's files are not a template", stack)
        self._stack_template = template

    def _write_new_stack(self, stack: str) -> bool:
        """Writes a new, empty stack's files from the template, saving a CLI run and its key
        derivation; False without a template. The configuration comes first: a checkpoint
        is what makes the stack exist, so a kill in between leaves no stack, and the next
        attempt writes both again."""
        template = self._stack_template
        if template is None:
            return False
        _replace_file(backend_files.config_file(self.config.work_dir, stack), template.config_text)
        checkpoint = backend_files.new_checkpoint(template, stack, datetime.now(UTC))
        _replace_file(template.folder / f"{stack}.json", checkpoint)
        return True

    def _timed_run(
        self,
        stack: _Stack,
        kind: str,
        operation: Callable[..., auto.UpResult | auto.DestroyResult],
    ) -> RunResult:
        """One `up` or `destroy` (`operation`) after recovery, timed from its events."""
        self._recover(stack)
        events = _RunEvents(kind)
        if not self._is_cloud_backend():
            stack.events = events
        try:
            # show_secrets=False: a summary read after the run then needs no decryption.
            result = operation(
                on_output=_quiet,
                on_error=_quiet,
                on_event=events,
                color="never",
                show_secrets=False,
            )
        except auto.CommandError as error:
            raise self._failure(stack, error) from None
        finally:
            stack.events = None  # a later call must not read this run's events
        return _run_result(result.summary, events.steps.timings())

    def check_passphrase(self) -> str | None:
        """Why the passphrase cannot decrypt the existing state, or None when it can (or
        there is no stack yet). Decrypting one stack's secrets costs one CLI run."""
        workspace = auto.LocalWorkspace(**_workspace_kwargs(self._options()))
        directory = self._backend_directory
        stack: str | None = None
        try:
            if directory is not None:
                stack = backend_files.some_stack(directory, self.config.project_name)
            else:
                stacks = workspace.list_stacks()
                stack = stacks[0].name if stacks else None
            if stack is None:
                return None
            workspace.export_stack(stack)  # --show-secrets: decrypts every secret
        except auto.CommandError as error:
            if re.search(r"passphrase", str(error), re.IGNORECASE):
                return f"stack {stack}: {summarize_error(str(error), limit=300)}"
            raise translate(error) from None
        return None

    def stack_names(self) -> list[str]:
        """Every stack of the project in the backend, as the CLI lists them."""
        workspace = auto.LocalWorkspace(**_workspace_kwargs(self._options()))
        try:
            return sorted(summary.name for summary in workspace.list_stacks())
        except auto.CommandError as error:
            raise translate(error) from None

    def toolchain_versions(self) -> ToolchainVersions:
        workspace = auto.LocalWorkspace(**_workspace_kwargs(self._options()))
        return ToolchainVersions(
            pulumi_cli=workspace.pulumi_version,
            pulumi_sdk=metadata.version("pulumi"),
            # The provider plugin is pinned to the SDK's version (test_toolchain_pins.py).
            kubernetes_provider=metadata.version("pulumi-kubernetes"),
        )

    # -- operations ------------------------------------------------------------------------

    def up(
        self,
        desired: Desired,
        *,
        refresh: bool = False,
        message: str | None = None,
        replace: tuple[str, ...] = (),
    ) -> RunResult:
        """Applies the desired state; `refresh` reads the live objects first, so that an
        object deleted outside the operator is created again. `message` is the update's
        entry in the stack's history (history.py). `replace`: Services, by name, to
        delete and create again (a server-side apply merges a hand-edited port in as a
        second entry instead of putting the declared one back)."""
        instance = desired.instance
        program = build_program(desired, self.config.cluster)
        stack = self._stack(instance.namespace, instance.name, program)
        urns = [
            f"urn:pulumi:{stack.name}::{self.config.project_name}::"
            f"kubernetes:core/v1:Service::{name}"
            for name in replace
        ]
        return self._timed_run(
            stack,
            "update",
            partial(stack.up, refresh=refresh, message=message, replace=urns or None),
        )

    def recorded(self, namespace: str, name: str, secret_name: str, key: str) -> Recorded | None:
        """What the stack's state records of its last `up` (one CLI run, which decrypts
        the state's secrets); None if there is no stack."""
        try:
            stack = self._stack(namespace, name, _noop_program, create=False)
            exported = stack.workspace.export_stack(stack.name)  # --show-secrets
        except auto.StackNotFoundError:
            return None
        except auto.CommandError as error:
            raise translate(error) from None
        return backend_files.recorded(exported.deployment or {}, secret_name, key)

    def preview(self, desired: Desired, cluster: ClusterAccess | None = None) -> Plan:
        """The plan against the current state; creates nothing, not even the stack, and
        takes no lock. `cluster`: the provider's settings, when not the operator's own."""
        instance = desired.instance
        program = build_program(desired, cluster or self.config.cluster)
        steps: list[PlannedStep] = []

        def record(event: auto.EngineEvent) -> None:
            if event.resource_pre_event is not None:
                meta = event.resource_pre_event.metadata
                steps.append(PlannedStep(meta.op.value, meta.type, meta.urn.rsplit("::", 1)[-1]))

        try:
            stack = self._stack(instance.namespace, instance.name, program, create=False)
            existed = True
        except auto.StackNotFoundError:
            existed = False
        try:
            if existed:
                result = stack.preview(on_output=_quiet, on_error=_quiet, on_event=record)
            else:
                # No stack yet: plan against empty state in a throwaway backend.
                with tempfile.TemporaryDirectory(prefix="mysql-preview-") as scratch:
                    scratch_stack = auto.create_stack(
                        stack_name=stack_name(instance.namespace, instance.name),
                        project_name=self.config.project_name,
                        program=program,
                        opts=self._options(scratch_backend=Path(scratch)),
                    )
                    result = scratch_stack.preview(
                        on_output=_quiet, on_error=_quiet, on_event=record
                    )
        except auto.CommandError as error:
            raise translate(error) from None
        return Plan(
            change_summary={str(op): int(n) for op, n in result.change_summary.items()},
            steps=tuple(steps),
            stack_existed=existed,
        )

    def destroy(self, namespace: str, name: str, message: str | None = None) -> RunResult | None:
        """Destroys the stack's resources (retained ones are only forgotten); None if no stack."""
        try:
            stack = self._stack(namespace, name, _noop_program, create=False)
        except auto.StackNotFoundError:
            return None
        return self._timed_run(stack, "destroy", partial(stack.destroy, message=message))

    def history(self, namespace: str, name: str) -> list[HistoryEntry] | None:
        """The stack's updates, as history.py reads their messages; None if no stack."""
        try:
            stack = self._stack(namespace, name, _noop_program, create=False)
            # show_secrets=False: the entries' config stays encrypted and is not read.
            summaries = stack.history(show_secrets=False)
        except auto.StackNotFoundError:
            return None
        except auto.CommandError as error:
            raise translate(error) from None
        return [
            history_entry(
                version=summary.version,
                started=summary.start_time,
                ended=summary.end_time,
                operation=summary.kind,
                result=summary.result,
                message=summary.message,
                changes={str(op): int(n) for op, n in (summary.resource_changes or {}).items()},
            )
            for summary in summaries
        ]

    def forget_stack(self, namespace: str, name: str) -> None:
        """Removes the stack and its state without touching the cluster; a missing stack
        is fine. For a namespace being deleted, whose objects the namespace takes along."""
        try:
            stack = self._stack(namespace, name, _noop_program, create=False)
        except auto.StackNotFoundError:
            return
        try:
            stack.workspace.remove_stack(stack.name, force=True)
        except auto.StackNotFoundError:
            return
        except auto.CommandError as error:
            raise self._failure(stack, error) from None

    def stack_state(self, namespace: str, name: str, *, definite: bool) -> StackState | None:
        """Whether the stack exists and how many Kubernetes objects its state holds. Read
        from the checkpoint where the backend is a directory or a bucket (cheap); else, or
        when it cannot be read that way, it costs a CLI run, so it is asked only when
        `definite`, else the answer is None."""
        stack = stack_name(namespace, name)
        latest = self._latest(stack)
        if latest is not None:
            return StackState(True, deployed_kubernetes_objects(latest))
        if self._backend_directory is not None and self._checkpoint_file(stack) is None:
            return StackState(False, 0)
        # Being rewritten, compressed, or in a bucket that could not be read: the CLI can tell.
        if not definite:
            return None
        try:
            found = self._stack(namespace, name, _noop_program, create=False)
            return StackState(True, deployed_kubernetes_objects(found.export_stack().deployment))
        except auto.StackNotFoundError:
            return StackState(False, 0)
        except auto.CommandError as error:
            raise translate(error) from None

    # -- recovery --------------------------------------------------------------------------

    def _failure(self, stack: auto.Stack, error: auto.CommandError) -> StackError:
        if isinstance(error, auto.ConcurrentUpdateError):
            # Another holder's lock: removed only if that holder is provably gone; either
            # way the caller retries with backoff.
            try:
                self._clear_stale_locks(stack.name)
            except StackError as stuck:
                return stuck
            return StackError(FailureKind.STUCK, "the stack was locked by a run that has ended")
        return translate(error)

    def repair_backend(self) -> None:
        """Removes the unreadable metadata sidecars a crash left anywhere in a directory
        backend, before the first CLI run reads a stack."""
        if self._backend_directory is not None:
            _remove_sidecars(backend_files.broken_sidecars(self._backend_directory))

    def _recover(self, stack: auto.Stack) -> None:
        """Clears what a crashed run left: unreadable sidecars, locks whose holders are
        gone, then pending operations."""
        directory = self._backend_directory
        if directory is not None:
            _remove_sidecars(
                backend_files.broken_stack_sidecars(directory, self.config.project_name, stack.name)
            )
        if self._lock_store is not None:
            self._clear_stale_locks(stack.name)
        if self._checkpoint_is_clean(stack):
            return  # no `stack export` (a CLI run and a passphrase decryption) per reconcile
        try:
            exported = stack.export_stack()
        except auto.CommandError as error:
            raise translate(error) from None
        if not exported.deployment or not exported.deployment.get("pending_operations"):
            return
        cleaned, count = drop_pending_operations(exported.deployment)
        log.warning("stack %s had %d pending operations: dropping them", stack.name, count)
        stack.import_stack(auto.Deployment(version=exported.version, deployment=cleaned))

    def _clear_stale_locks(self, stack: str) -> None:
        """Removes the stack's locks whose holders are provably gone; raises STUCK, naming
        the holders, when any lock is left."""
        store = self._lock_store
        if store is None:
            raise StackError(
                FailureKind.STUCK,
                "the stack is locked, and this process cannot read the backend's locks to "
                "tell whether their holders still run",
            )
        left: list[str] = []
        try:
            locks, unreadable = store.locks(stack)
            for lock in locks:
                verdict = self._judge_lock(lock)
                if verdict.gone:
                    log.warning(
                        "stack %s: removing the lock of %s: %s",
                        stack,
                        lock.holder(),
                        verdict.reason,
                    )
                    store.remove(lock)
                else:
                    left.append(f"{lock.holder()}: {verdict.reason}")
        except (OSError, S3Error) as error:
            raise StackError(
                FailureKind.STUCK, f"the stack is locked, and its locks cannot be read: {error}"
            ) from None
        left += [f"{key}: unreadable" for key in unreadable]
        if left:
            raise StackError(FailureKind.STUCK, "the stack is locked by " + "; ".join(left))

    def _is_cloud_backend(self) -> bool:
        """A Pulumi Cloud-style service, which numbers updates; every other is DIY."""
        return self.config.backend_url.startswith(("https://", "http://"))

    def _checkpoint_file(self, stack: str) -> Path | None:
        directory = self._backend_directory
        if directory is None:
            return None
        return backend_files.checkpoint_file(directory, self.config.project_name, stack)

    def _stack_exists(self, stack: str) -> bool:
        """Whether the backend holds the stack, as far as can be told without a CLI run
        (False: not known to; the CLI then selects it)."""
        if self._backend_directory is not None:
            return self._checkpoint_file(stack) is not None
        return self._bucket is not None and self._bucket.has_checkpoint(stack)

    def _latest(self, stack: str) -> Mapping[str, Any] | None:
        """The stack's latest deployment read straight from the backend (a directory's
        file, a bucket's object); None when it has none or it cannot be read that way."""
        path = self._checkpoint_file(stack)
        if path is not None:
            return backend_files.latest_deployment(path)
        if self._bucket is not None:
            return self._bucket.latest_deployment(stack)
        return None

    def _checkpoint_is_clean(self, stack: auto.Stack) -> bool:
        """True when the DIY backend's checkpoint shows no pending operations; False when
        it does, or cannot be read that way (another backend, a compressed file)."""
        latest = self._latest(stack.name)
        return latest is not None and not latest.get("pending_operations")


def _write_project_file(work_dir: Path, settings: auto.ProjectSettings) -> bool:
    """Pulumi.yaml, replaced only when it differs; whether it was written."""
    path = work_dir / "Pulumi.yaml"
    text = yaml.safe_dump(settings.to_dict(), sort_keys=True)
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    _replace_file(path, text)
    return True


def _replace_file(path: Path, text: str) -> None:
    """Replaces a file in one step: readers see the old file or the new one. The staging
    name does not end in the file's suffix, so that no reader of a folder takes it for one
    of its files."""
    descriptor, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    Path(staged).replace(path)


def _remove_sidecars(paths: list[Path]) -> None:
    for path in paths:
        log.warning("removing %s: a killed CLI left this metadata file unreadable", path)
        path.unlink(missing_ok=True)


def _run_result(summary: auto.UpdateSummary, timings: RunTimings) -> RunResult:
    changes = summary.resource_changes or {}
    return RunResult(
        update_id=update_id(summary.kind, summary.version, summary.start_time),
        kind=summary.kind,
        result=summary.result,
        resource_changes={str(op): int(count) for op, count in changes.items()},
        timings=timings,
    )


def update_id(kind: str, version: int | None, start_time: datetime) -> str:
    """The backend's version where it numbers updates; DIY backends report 0, so there the
    start time, to the microsecond, identifies the run (a stack runs one at a time)."""
    if version:
        return str(version)
    return f"{kind}-{start_time.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}"


def _workspace_kwargs(options: auto.LocalWorkspaceOptions) -> dict[str, Any]:
    return {
        "work_dir": options.work_dir,
        "project_settings": options.project_settings,
        "secrets_provider": options.secrets_provider,
        "env_vars": options.env_vars,
        "pulumi_command": options.pulumi_command,
    }
