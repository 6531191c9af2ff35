"""Command line: `reconciler run`, `reconciler preview -f cr.yml`,
`reconciler history NAMESPACE/NAME` and `reconciler migrate-state --to s3://...`.

`run` starts the long-running reconciler (see `runner.py`; exactly one may run per state
backend). `preview` prints the plan a manifest would cause against the instance's
current stack state and changes nothing; its exit code is 0 for no changes, 2 for
changes and 1 for an error, so CI can gate on it. `history` prints the instance's stack
updates (history.py), newest first. `migrate-state` copies a file backend's stacks to S3
(migrate.py).

Log lines are logfmt (`key=value`), one per event, with the instance, the phase and the
duration where they apply.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import yaml

from reconciler.backend_files import backend_directory
from reconciler.driver import Plan
from reconciler.history import render as render_history
from reconciler.kube import Gateway, load_api_client
from reconciler.migrate import Destination, MigrationError, migrate
from reconciler.names import names_for
from reconciler.policy import desired_for
from reconciler.program import ClusterAccess
from reconciler.runner import (
    AlreadyRunning,
    make_driver,
    resolve_passphrase,
    run,
    single_instance,
)
from reconciler.runs import StackError, stack_name
from reconciler.s3 import S3Error
from reconciler.settings import (
    Settings,
    SettingsError,
    add_arguments,
    add_run_arguments,
    load_settings,
)
from reconciler.spec import SpecError, parse_instance
from reconciler.status import JobPhase, parse_status
from reconciler.vocabulary import BACKUP_KIND, PASSWORD_KEY, Stage

EXIT_NO_CHANGES: Final = 0
EXIT_ERROR: Final = 1
EXIT_CHANGES: Final = 2
# LogRecord's own attributes; anything else on a record came in through `extra=`.
_RECORD_FIELDS: Final = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS:
                fields[key] = round(value, 3) if isinstance(value, float) else value
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


def _logfmt_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text and all(c.isalnum() or c in "-_./:@+" for c in text):
        return text
    return json.dumps(text)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Every API request at DEBUG would bury the reconciler's own lines.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, root.level))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reconciler", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser(
        "run",
        help="run the reconciler (only one may run per state backend)",
        description="Watch MySQL objects and drive one Pulumi stack per object. "
        "Exactly one reconciler may run against a state backend at a time.",
    )
    add_arguments(run_parser)
    add_run_arguments(run_parser)
    preview = commands.add_parser(
        "preview", help="print the plan a manifest would cause; exit 0 no changes, 2 changes"
    )
    add_arguments(preview)
    preview.add_argument(
        "-f", "--filename", required=True, help="a MySQL manifest (YAML); - for standard input"
    )
    preview.add_argument(
        "-n", "--object-namespace", help="namespace of the object if the manifest has none"
    )
    preview.add_argument("--output", choices=["text", "json"], default="text")
    history = commands.add_parser(
        "history",
        help="print an instance's stack updates, newest first; exit 1 if it has no stack",
        description="Every update of the instance's stack: its time, kind (update, "
        "teardown, heal, destroy), the MySQL object's generation and uid, the result, the "
        "cause and the resource changes. The stack outlives the object, so this works "
        "after a delete too.",
    )
    add_arguments(history)
    history.add_argument("instance", metavar="NAMESPACE/NAME")
    history.add_argument("--output", choices=["text", "json"], default="text")
    migrate_parser = commands.add_parser(
        "migrate-state",
        help="copy every stack of the file backend to an S3 bucket; exit 1 on refusal",
        description="Copies the state directory's backend (--backend-url, default "
        "file://<state-dir>) to an S3 backend, byte for byte, with the stacks' history. "
        "The reconciler must be stopped. Nothing is overwritten, and the source is only "
        "read; afterwards the engine must list every stack in the bucket and decrypt them "
        "with the passphrase. Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.",
    )
    add_arguments(migrate_parser)
    migrate_parser.add_argument(
        "--to", required=True, metavar="S3_URL", help="the S3 backend URL to copy to"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args, os.environ)
    except SettingsError as error:
        print(f"reconciler: {error}", file=sys.stderr)
        return EXIT_ERROR
    configure_logging(settings.log_level.value)
    try:
        if args.command == "run":
            return run(settings)
        if args.command == "history":
            return history(settings, args.instance, args.output)
        if args.command == "migrate-state":
            return migrate_state(settings, args.to)
        return preview(settings, Path(args.filename), args.object_namespace, args.output)
    except (SettingsError, AlreadyRunning) as error:
        print(f"reconciler: {error}", file=sys.stderr)
        return EXIT_ERROR


def preview(settings: Settings, manifest: Path, namespace: str | None, output: str) -> int:
    """The plan of a manifest against the instance's stack. What it reads from the cluster
    is the MySQL object only (its uid and how far it got); the password the stack
    declares and the provider's settings come from the stack's own state. The engine runs
    with no cluster at all (`without_cluster`), so the plan is the same wherever it runs:
    in the operator's pod, or in CI with the bucket and the passphrase."""
    try:
        # `-`: e.g. `kubectl exec -i` into the reconciler's pod, which has the state.
        text = sys.stdin.read() if str(manifest) == "-" else manifest.read_text()
        document = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as error:
        print(f"reconciler preview: cannot read {manifest}: {error}", file=sys.stderr)
        return EXIT_ERROR
    if not isinstance(document, dict):
        print(f"reconciler preview: {manifest} is not a MySQL object", file=sys.stderr)
        return EXIT_ERROR
    if document.get("kind") == BACKUP_KIND:
        # A backup is a Job the operator starts, not a change of the instance's stack.
        print(
            f"reconciler preview: {manifest} is a {BACKUP_KIND}: it changes no stack",
            file=sys.stderr,
        )
        return EXIT_NO_CHANGES
    gateway = Gateway(load_api_client(settings.kubeconfig))
    obj, live = _as_stored(document, namespace, gateway)
    try:
        instance = parse_instance(obj)
    except SpecError as error:
        print(f"reconciler preview: {error}", file=sys.stderr)
        return EXIT_ERROR
    # The stage and volume bindings the live object has reached, so that only the
    # manifest's changes show.
    status = parse_status(live or {})
    restored = status.restore is not None and status.restore.phase is JobPhase.SUCCEEDED
    stage = Stage.SERVING if restored else Stage.RESTORING
    passphrase = resolve_passphrase(settings, gateway)
    with tempfile.TemporaryDirectory(prefix="mysql-preview-") as scratch:
        # A workspace of its own: never the running reconciler's.
        driver = make_driver(
            settings,
            passphrase,
            work_dir=Path(scratch) / "work",
            engine_env=without_cluster(Path(scratch)),
        )
        try:
            recorded = driver.recorded(
                instance.namespace,
                instance.name,
                names_for(instance).credentials_secret,
                PASSWORD_KEY,
            )
            # The stack declares the password the server has (a new one is rotated, not
            # declared), and its provider exactly as the last `up` did.
            applied = recorded.password if recorded is not None else None
            desired = desired_for(instance, stage, status, applied or instance.spec.password)
            cluster = (
                ClusterAccess(recorded.kubeconfig, recorded.context)
                if recorded is not None
                else ClusterAccess()
            )
            plan = driver.preview(desired, cluster)
        except StackError as error:
            print(f"reconciler preview: {error.kind.value}: {error.message}", file=sys.stderr)
            return EXIT_ERROR
    print(render_plan(plan, stack_name(instance.namespace, instance.name), output))
    return EXIT_CHANGES if plan.has_changes else EXIT_NO_CHANGES


def without_cluster(scratch: Path) -> dict[str, str]:
    """The engine's environment for a preview: the provider finds no cluster to reach
    (no $KUBECONFIG, an empty home without ~/.kube/config, no in-cluster variables), so it
    plans from the state alone and never sends a request, not even a dry run. Removes
    $KUBECONFIG from this process's environment, which the CLI inherits (the program
    would otherwise take it for the provider's kubeconfig)."""
    os.environ.pop("KUBECONFIG", None)
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        # Plugins stay where they are.
        "PULUMI_HOME": os.environ.get("PULUMI_HOME") or str(Path.home() / ".pulumi"),
        "KUBERNETES_SERVICE_HOST": "",
        "KUBERNETES_SERVICE_PORT": "",
    }


def history(settings: Settings, instance: str, output: str) -> int:
    namespace, slash, name = instance.partition("/")
    if not slash or not namespace or not name:
        print(f"reconciler history: {instance!r} is not NAMESPACE/NAME", file=sys.stderr)
        return EXIT_ERROR
    gateway = Gateway(load_api_client(settings.kubeconfig))
    try:
        driver = make_driver(settings, resolve_passphrase(settings, gateway))
        entries = driver.history(namespace, name)
    except StackError as error:
        print(f"reconciler history: {error.kind.value}: {error.message}", file=sys.stderr)
        return EXIT_ERROR
    stack = stack_name(namespace, name)
    if entries is None:
        print(f"reconciler history: no stack {stack}", file=sys.stderr)
        return EXIT_ERROR
    print(render_history(stack, entries, output))
    return EXIT_NO_CHANGES


def migrate_state(settings: Settings, to: str) -> int:
    directory = backend_directory(settings.backend_url)
    if directory is None:
        print(
            "reconciler migrate-state: the source must be a directory (file://) backend",
            file=sys.stderr,
        )
        return EXIT_ERROR
    try:
        destination = Destination.from_url(to, os.environ)
        # Held throughout: no reconciler may write the state while it is copied.
        with single_instance(settings.state_dir):
            summary = migrate(directory, destination)
        passphrase = resolve_passphrase(settings, _gateway_if_needed(settings))
        with tempfile.TemporaryDirectory(prefix="mysql-migrate-") as scratch:
            copied = make_driver(
                replace(settings, backend_url=to), passphrase, work_dir=Path(scratch)
            )
            listed = copied.stack_names()
            unreadable = copied.check_passphrase()
    except (MigrationError, S3Error, OSError) as error:
        print(f"reconciler migrate-state: {error}", file=sys.stderr)
        return EXIT_ERROR
    except StackError as error:
        print(f"reconciler migrate-state: {error.kind.value}: {error.message}", file=sys.stderr)
        return EXIT_ERROR
    missing = sorted(set(summary.stacks) - set(listed))
    if missing or unreadable is not None:
        print(
            "reconciler migrate-state: the bucket does not read back as this state: "
            + (f"stacks missing: {', '.join(missing)}" if missing else str(unreadable)),
            file=sys.stderr,
        )
        return EXIT_ERROR
    print(
        f"copied {summary.copied} files ({summary.copied_bytes} bytes), {summary.skipped} "
        f"already there; the engine lists all {len(summary.stacks)} stacks in the bucket "
        "and the passphrase decrypts them. The directory was left as it was."
    )
    return EXIT_NO_CHANGES


def _gateway_if_needed(settings: Settings) -> Gateway | None:
    """A gateway only where the passphrase is in a Secret."""
    if settings.passphrase.secret is None:
        return None
    return Gateway(load_api_client(settings.kubeconfig))


def _as_stored(
    document: Mapping[str, Any], namespace: str | None, gateway: Gateway
) -> tuple[dict[str, Any], Mapping[str, Any] | None]:
    """The manifest as the reconciler would see it: namespaced, with the live object's uid
    (Job names and the restore depend on it), or a made-up one for an object not created
    yet; and the live object, if there is one."""
    obj = dict(document)
    metadata = dict(obj.get("metadata") or {})
    metadata["namespace"] = metadata.get("namespace") or namespace or "default"
    live = gateway.get_mysql(metadata["namespace"], str(metadata.get("name", "")))
    live_uid = (live or {}).get("metadata", {}).get("uid")
    metadata["uid"] = live_uid or str(uuid.uuid4())
    obj["metadata"] = metadata
    return obj, live


def render_plan(plan: Plan, stack: str, output: str) -> str:
    changes = {op: n for op, n in plan.change_summary.items() if op != "same" and n}
    if output == "json":
        return json.dumps(
            {
                "stack": stack,
                "stackExists": plan.stack_existed,
                "hasChanges": plan.has_changes,
                "changeSummary": dict(plan.change_summary),
                "steps": [
                    {"op": s.op, "type": s.type, "name": s.name}
                    for s in plan.steps
                    if s.op != "same"
                ],
            },
            indent=2,
        )
    lines = [f"stack {stack}" + ("" if plan.stack_existed else " (not created yet)")]
    lines += [f"  {s.op:<10} {s.type} {s.name}" for s in plan.steps if s.op != "same"]
    summary = ", ".join(f"{op} {n}" for op, n in sorted(changes.items())) or "no changes"
    lines.append(summary)
    return "\n".join(lines)


__all__ = ["main"]
