"""The driver's fast paths: the DIY backend's checkpoint file read for a crash's leftovers
and for the stack's state, the CLI runs a workspace skips, and a run's summary and step
times from the engine's events (built from the JSON the engine streams). A recording
command stands in for the CLI: nothing here runs the engine."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from pulumi import automation as auto
from semver import VersionInfo

from reconciler import backend_files
from reconciler.driver import Driver, DriverConfig, _RunEvents, _Stack, _Workspace
from reconciler.observation import StackState
from reconciler.program import ClusterAccess
from reconciler.vocabulary import Stage
from tests.unit.builders import desired

pytestmark = pytest.mark.unit

PROJECT = "mysql-operator"
STACK = "ns.db"


def driver(backend_url: str, tmp_path: Path) -> Driver:
    return Driver(
        DriverConfig(
            project_name=PROJECT,
            backend_url=backend_url,
            work_dir=tmp_path / "work",
            cluster=ClusterAccess(),
            passphrase="unused",  # nothing is encrypted here
        )
    )


def write_checkpoint(
    backend: Path, latest: dict[str, Any], *, project: str = PROJECT, stack: str = STACK
) -> None:
    path = backend / ".pulumi" / "stacks" / project / f"{stack}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 3, "checkpoint": {"stack": stack, "latest": latest}}))


def is_clean(subject: Driver) -> bool:
    stack: Any = SimpleNamespace(name=STACK)
    return subject._checkpoint_is_clean(stack)


def test_a_checkpoint_without_pending_operations_is_clean(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, {"resources": [{"urn": "u"}]})
    assert is_clean(driver(f"file://{tmp_path}", tmp_path))


def test_a_backend_url_with_query_options_is_still_a_directory(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, {"resources": []})
    assert is_clean(driver(f"file://{tmp_path}?no_tmp_dir=true", tmp_path))


def test_pending_operations_or_an_unreadable_checkpoint_need_the_export(tmp_path: Path) -> None:
    pending = tmp_path / "pending"
    write_checkpoint(pending, {"pending_operations": [{"type": "creating"}]})
    assert not is_clean(driver(f"file://{pending}", tmp_path))

    broken = tmp_path / "broken"
    write_checkpoint(broken, {})
    (broken / ".pulumi" / "stacks" / PROJECT / f"{STACK}.json").write_text("{not json")
    assert not is_clean(driver(f"file://{broken}", tmp_path))

    other_project = tmp_path / "other"
    write_checkpoint(other_project, {}, project="someone-else")
    assert not is_clean(driver(f"file://{other_project}", tmp_path))

    assert not is_clean(driver(f"file://{tmp_path / 'empty'}", tmp_path))
    assert not is_clean(driver("s3://bucket/state", tmp_path))


class RecordingCommand(auto.PulumiCommand):
    """Records the CLI runs a workspace asks for, and runs none; `answers` maps a
    command's first two words to its stdout, or to an error to raise."""

    def __init__(self, answers: dict[str, str | Exception] | None = None) -> None:
        # No `pulumi version`: nothing is run here.
        self.command = "pulumi"
        self.version = VersionInfo.parse("3.274.1")
        self.runs: list[list[str]] = []
        self.answers = answers or {}

    def run(self, args: list[str], *_where_and_how: Any, **_callbacks: Any) -> Any:
        self.runs.append(list(args))
        answer = self.answers.get(" ".join(args[:2]), "{}")
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(stdout=answer, stderr="", code=0)

    def words(self) -> list[str]:
        return [" ".join(run[:2]) for run in self.runs]


def workspace(tmp_path: Path, *, exists: bool) -> tuple[_Workspace, RecordingCommand]:
    command = RecordingCommand()
    known = _Workspace(lambda _stack: exists, work_dir=str(tmp_path), pulumi_command=command)
    return known, command


def test_a_stack_known_to_exist_is_used_without_stack_select(tmp_path: Path) -> None:
    known, command = workspace(tmp_path, exists=True)
    auto.Stack.select(STACK, known)
    assert command.runs == []


def test_a_stack_not_known_to_exist_is_selected_through_the_cli(tmp_path: Path) -> None:
    unknown, command = workspace(tmp_path, exists=False)
    auto.Stack.select(STACK, unknown)
    assert [run[:2] for run in command.runs] == [["stack", "select"]]
    assert STACK in command.runs[0]


def test_outputs_are_not_read_after_an_up(tmp_path: Path) -> None:
    # The driver reads none; reading them is two CLI runs, one decrypting.
    known, command = workspace(tmp_path, exists=True)
    assert auto.Stack.select(STACK, known).outputs() == {}
    assert command.runs == []


def step(kind: str, type_: str, name: str) -> auto.EngineEvent:
    metadata = {"op": "create", "urn": f"urn:pulumi:s::p::{type_}::{name}", "type": type_}
    return auto.EngineEvent.from_json({kind: {"metadata": metadata}})


def test_only_steps_on_kubernetes_objects_are_timed() -> None:
    events = _RunEvents("update")
    events(step("resourcePreEvent", "pulumi:providers:kubernetes", "k8s"))  # loads a plugin
    events(step("resourcePreEvent", "kubernetes:batch/v1:Job", "restore"))
    events(step("resOpFailedEvent", "kubernetes:batch/v1:Job", "restore"))
    assert len(events.steps._intervals) == 1, "the Job's step, and only it"
    assert events.steps._open == {}, "the provider's step was never opened"


def test_the_summary_comes_from_the_summary_event_or_not_at_all() -> None:
    events = _RunEvents("destroy")
    assert events.summary() is None, "no summary event: the stack asks the CLI instead"
    events(
        auto.EngineEvent.from_json(
            {"summaryEvent": {"maybeCorrupt": False, "resourceChanges": {"delete": 9}}}
        )
    )
    summary = events.summary()
    assert summary is not None
    assert (summary.kind, summary.result, summary.version) == ("destroy", "succeeded", None)
    assert summary.start_time == events.started
    assert {str(op): n for op, n in (summary.resource_changes or {}).items()} == {"delete": 9}


def _no_program() -> None:
    """The stacks here never run a program."""


def test_a_stack_init_that_finds_the_stack_falls_back_to_selecting_it(tmp_path: Path) -> None:
    # No checkpoint file (a compressed one, say) but the stack exists: init fails, select.
    subject = driver(f"file://{tmp_path / 'state'}", tmp_path)
    exists = auto.StackAlreadyExistsError(
        auto.CommandResult(stdout="", stderr=f"error: stack '{STACK}' already exists", code=255)
    )
    subject._command = RecordingCommand({"stack init": exists})
    stack = subject._stack("ns", "db", _no_program)
    assert stack.name == STACK
    assert subject._command.words() == ["stack init", "stack select"]


def stack_of(subject: Driver, command: RecordingCommand) -> _Stack:
    subject._command = command
    return subject._stack("ns", "db", _no_program, create=False)


def events_during_a_run(subject: Driver, stack: _Stack) -> tuple[object, object]:
    """(stack.events, the run's on_event) as seen while the run's operation runs."""
    seen: list[tuple[object, object]] = []
    summary = auto.UpdateSummary(
        kind="update",
        start_time=datetime.now(UTC),
        message="",
        environment={},
        config={},
        result="succeeded",
        end_time=datetime.now(UTC),
        resource_changes={},
    )

    def operation(**options: Any) -> Any:
        seen.append((stack.events, options["on_event"]))
        return SimpleNamespace(summary=summary)

    subject._timed_run(stack, "update", operation)
    assert stack.events is None, "cleared after the run"
    return seen[0]


def test_the_summary_comes_from_events_except_on_a_cloud_backend(tmp_path: Path) -> None:
    diy = driver(f"file://{tmp_path / 'state'}", tmp_path)
    write_checkpoint(tmp_path / "state", {})
    stack_events, on_event = events_during_a_run(diy, stack_of(diy, RecordingCommand()))
    assert stack_events is on_event

    cloud = driver("https://api.example.invalid", tmp_path)
    stack_events, on_event = events_during_a_run(cloud, stack_of(cloud, RecordingCommand()))
    assert stack_events is None, "a Cloud backend numbers updates: ask its history"
    assert isinstance(on_event, _RunEvents), "its steps are still timed"


def test_without_a_summary_event_the_history_is_asked(tmp_path: Path) -> None:
    command = RecordingCommand({"stack history": "[]"})
    subject = driver(f"file://{tmp_path / 'state'}", tmp_path)
    write_checkpoint(tmp_path / "state", {})  # known to exist: selected without the CLI
    stack = stack_of(subject, command)
    stack.events = _RunEvents("update")
    assert stack.info(show_secrets=False) is None  # the (empty) history's answer
    assert command.words() == ["stack history"]

    command.runs.clear()
    stack.events(auto.EngineEvent.from_json({"summaryEvent": {"resourceChanges": {"same": 11}}}))
    summary = stack.info(show_secrets=False)
    assert summary is not None
    assert summary.kind == "update"
    assert command.runs == [], "the summary came from the events"


# -- the stack's state ----------------------------------------------------------------------

KUBERNETES_OBJECTS = {
    "resources": [
        {"type": "pulumi:pulumi:Stack"},
        {"type": "pulumi:providers:kubernetes"},
        {"type": "kubernetes:core/v1:Service"},
        {"type": "kubernetes:apps/v1:Deployment"},
    ]
}


def not_found(what: str) -> auto.StackNotFoundError:
    return auto.StackNotFoundError(
        auto.CommandResult(stdout="", stderr=f"error: no stack named '{what}' found", code=255)
    )


def exported(latest: dict[str, Any]) -> str:
    return json.dumps({"version": 3, "deployment": latest})


def test_a_directory_backend_reads_the_stack_state_from_its_checkpoint(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, KUBERNETES_OBJECTS)
    subject = driver(f"file://{tmp_path}", tmp_path)
    subject._command = RecordingCommand()
    assert subject.stack_state("ns", "db", definite=False) == StackState(True, 2)
    assert subject._command.runs == []


def test_a_directory_backend_without_a_checkpoint_has_no_stack(tmp_path: Path) -> None:
    subject = driver(f"file://{tmp_path}", tmp_path)
    subject._command = RecordingCommand()
    assert subject.stack_state("ns", "db", definite=False) == StackState(False, 0)
    assert subject._command.runs == []


def test_an_empty_stack_is_not_deployed(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, {"resources": [{"type": "pulumi:pulumi:Stack"}]})
    state = driver(f"file://{tmp_path}", tmp_path).stack_state("ns", "db", definite=False)
    assert state == StackState(True, 0)
    assert state is not None
    assert not state.deployed


def test_elsewhere_the_state_costs_a_cli_run_only_when_definite(tmp_path: Path) -> None:
    subject = driver("s3://bucket/state", tmp_path)
    subject._command = RecordingCommand({"stack export": exported(KUBERNETES_OBJECTS)})
    assert subject.stack_state("ns", "db", definite=False) is None
    assert subject._command.runs == []
    assert subject.stack_state("ns", "db", definite=True) == StackState(True, 2)
    assert subject._command.words() == ["stack select", "stack export"]


def test_a_definite_read_of_a_missing_stack_says_so(tmp_path: Path) -> None:
    subject = driver("s3://bucket/state", tmp_path)
    subject._command = RecordingCommand({"stack select": not_found(STACK)})
    assert subject.stack_state("ns", "db", definite=True) == StackState(False, 0)


def test_an_unreadable_checkpoint_is_asked_of_the_cli(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, {})
    (tmp_path / ".pulumi" / "stacks" / PROJECT / f"{STACK}.json").write_text("{being rewritten")
    subject = driver(f"file://{tmp_path}", tmp_path)
    subject._command = RecordingCommand({"stack export": exported(KUBERNETES_OBJECTS)})
    assert subject.stack_state("ns", "db", definite=False) is None
    assert subject.stack_state("ns", "db", definite=True) == StackState(True, 2)
    assert subject._command.words() == ["stack export"]


# -- forgetting stacks ---------------------------------------------------------------------


def test_forget_removes_the_stack_by_force(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, KUBERNETES_OBJECTS)
    subject = driver(f"file://{tmp_path}", tmp_path)
    command = RecordingCommand()
    subject._command = command
    subject.forget_stack("ns", "db")
    (run,) = command.runs
    assert run[:2] == ["stack", "rm"]
    assert "--force" in run, "a stack that still holds objects must go too"
    assert STACK in run


def test_forgetting_a_missing_stack_is_fine(tmp_path: Path) -> None:
    subject = driver(f"file://{tmp_path}", tmp_path)
    command = RecordingCommand({"stack select": not_found(STACK)})
    subject._command = command
    subject.forget_stack("ns", "db")
    assert "stack rm" not in command.words()


# -- up -------------------------------------------------------------------------------------

INSTANCE_STACK = "shop.mysql-instance"
HISTORY = json.dumps(
    [
        {
            "kind": "update",
            "startTime": "2026-01-01T12:00:00.000Z",
            "endTime": "2026-01-01T12:00:01.000Z",
            "message": "",
            "environment": {},
            "config": {},
            "result": "succeeded",
            "resourceChanges": {"create": 3},
            "version": 0,
        }
    ]
)


def up_args(tmp_path: Path, *, refresh: bool) -> tuple[list[str], Any]:
    """The `pulumi up` arguments of one `Driver.up`, and its result."""
    write_checkpoint(tmp_path, {}, stack=INSTANCE_STACK)
    subject = driver(f"file://{tmp_path}", tmp_path)
    command = RecordingCommand({"stack history": HISTORY})
    subject._command = command
    result = subject.up(desired(Stage.SERVING), refresh=refresh)
    ups = [run for run in command.runs if run[0] == "up"]
    assert len(ups) == 1, command.words()
    assert "stack init" not in command.words(), "an existing stack is selected"
    return ups[0], result


def test_an_up_applies_without_a_refresh_by_default(tmp_path: Path) -> None:
    args, result = up_args(tmp_path, refresh=False)
    assert "--refresh" not in args
    assert INSTANCE_STACK in args
    assert result.resource_changes == {"create": 3}


def test_an_up_with_refresh_reads_the_live_objects_first(tmp_path: Path) -> None:
    args, _ = up_args(tmp_path, refresh=True)
    assert "--refresh" in args


def sidecar_layout(backend: Path) -> dict[str, Path]:
    """A stack's checkpoint, backup and lock, each with the sidecar fileblob writes."""
    stacks = backend / ".pulumi" / "stacks" / PROJECT
    lock = backend / ".pulumi" / "locks" / "organization" / PROJECT / STACK / "l.json"
    other = stacks / "ns.other.json"
    files = {
        "checkpoint": stacks / f"{STACK}.json",
        "backup": stacks / f"{STACK}.json.bak",
        "lock": lock,
        "other": other,
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        Path(f"{path}.attrs").write_text('{"user.content_type": "application/json"}\n')
    return {name: Path(f"{path}.attrs") for name, path in files.items()}


def test_a_sidecar_a_crash_emptied_is_found_and_a_whole_one_is_not(tmp_path: Path) -> None:
    sidecars = sidecar_layout(tmp_path)
    assert backend_files.broken_sidecars(tmp_path) == []
    assert backend_files.broken_stack_sidecars(tmp_path, PROJECT, STACK) == []

    sidecars["checkpoint"].write_bytes(b"")
    sidecars["lock"].write_bytes(b"")
    sidecars["other"].write_text('{"user.content_')  # cut short
    assert backend_files.broken_sidecars(tmp_path) == sorted(
        [sidecars["checkpoint"], sidecars["lock"], sidecars["other"]]
    )
    # One stack's recovery touches only that stack's files.
    assert sorted(backend_files.broken_stack_sidecars(tmp_path, PROJECT, STACK)) == sorted(
        [sidecars["checkpoint"], sidecars["lock"]]
    )


def test_recovery_removes_only_the_stacks_broken_sidecars(tmp_path: Path) -> None:
    sidecars = sidecar_layout(tmp_path)
    sidecars["backup"].write_bytes(b"")
    sidecars["other"].write_bytes(b"")
    subject = driver(f"file://{tmp_path}", tmp_path)
    write_checkpoint(tmp_path, {"resources": []})  # clean: no export needed
    # The lock of a process of this host that has ended: removed with its sidecar.
    lock = Path(str(sidecars["lock"]).removesuffix(".attrs"))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    lock.write_text(
        json.dumps(
            {
                "pid": child.pid,
                "username": "app",
                "hostname": socket.gethostname(),
                "timestamp": "2026-12-03T10:00:00Z",
            }
        )
    )
    stack: Any = SimpleNamespace(name=STACK)
    subject._recover(stack)
    assert not lock.exists()  # recovery went on past the sidecars
    assert not sidecars["lock"].exists()
    assert not sidecars["backup"].exists()
    assert sidecars["checkpoint"].exists()
    assert sidecars["other"].exists()  # another stack's: left for its own recovery

    subject.repair_backend()
    assert not sidecars["other"].exists()


def test_the_project_file_is_written_once_and_stacks_do_not_rewrite_it(tmp_path: Path) -> None:
    subject = driver(f"file://{tmp_path / 'state'}", tmp_path)
    project_file = tmp_path / "work" / "Pulumi.yaml"
    written = yaml.safe_load(project_file.read_text())
    assert written["name"] == PROJECT
    assert written["backend"] == {"url": f"file://{tmp_path / 'state'}"}
    before = project_file.stat()

    subject._command = RecordingCommand()
    for name in ("a", "b"):
        subject._stack("ns", name, _no_program)
    again = driver(f"file://{tmp_path / 'state'}", tmp_path)  # a restart: same content
    again._command = RecordingCommand()
    assert again._options().project_settings is None
    after = project_file.stat()
    # Every workspace read the file; none replaced or truncated it.
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(path.name for path in project_file.parent.iterdir()) == ["Pulumi.yaml"]


def test_a_preview_against_a_scratch_backend_gets_a_work_dir_of_its_own(tmp_path: Path) -> None:
    subject = driver(f"file://{tmp_path / 'state'}", tmp_path)
    scratch = tmp_path / "scratch"
    subject._command = RecordingCommand()
    options = subject._options(scratch_backend=scratch)
    assert options.work_dir == str(scratch)
    assert options.project_settings is not None
    assert options.project_settings.backend is not None
    assert options.project_settings.backend.url == f"file://{scratch}"


def test_a_project_file_another_process_changed_is_put_back_before_the_next_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    subject = driver(f"file://{tmp_path / 'state'}", tmp_path)
    subject._command = RecordingCommand()
    project_file = tmp_path / "work" / "Pulumi.yaml"
    ours = project_file.read_text()
    project_file.write_text("name: mysql-operator\nbackend:\n  url: file:///elsewhere\n")
    subject._options()
    assert project_file.read_text() == ours
    assert "named other settings: rewritten" in caplog.text


SALT = "v1:niLTCof4Jck=:v1:aOl60tz3FUEXGz5m:Uh5eSc3oj1JMoBN/BkJHrNzWWhxyDQ=="


def write_cli_stack(
    tmp_path: Path, stack: str, *, config: dict[str, Any] | None = None, **latest: Any
) -> None:
    """The files `pulumi stack init` writes for a new stack (as CLI v3.274 wrote them),
    with `latest` fields replaced and `config` as the stack's configuration."""
    folder = tmp_path / "state" / ".pulumi" / "stacks" / PROJECT
    folder.mkdir(parents=True, exist_ok=True)
    deployment = {
        "manifest": {"time": "2026-12-02T05:35:52Z", "magic": "294a", "version": "v3.274.1"},
        "secrets_providers": {"type": "passphrase", "state": {"salt": SALT}},
        "metadata": {},
        **latest,
    }
    checkpoint = {"stack": f"organization/{PROJECT}/{stack}", "latest": deployment}
    (folder / f"{stack}.json").write_text(json.dumps({"version": 3, "checkpoint": checkpoint}))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    text = yaml.safe_dump(config if config is not None else {"encryptionsalt": SALT})
    (work / f"Pulumi.{stack}.yaml").write_text(text)


def test_after_the_first_new_stack_the_next_are_written_without_the_cli(
    tmp_path: Path,
) -> None:
    subject = driver(f"file://{tmp_path / 'state'}", tmp_path)
    write_cli_stack(tmp_path, "ns.first")  # as if this driver's `stack init` had run
    subject._learn_stack_template("ns.first")
    subject._command = RecordingCommand({})

    stack = subject._stack("ns", "db", _no_program)

    assert stack.name == STACK
    assert subject._command.words() == [], "neither `stack init` nor `stack select`"
    work = tmp_path / "work"
    assert (work / f"Pulumi.{STACK}.yaml").read_text() == (
        work / "Pulumi.ns.first.yaml"
    ).read_text()
    written = json.loads(
        (tmp_path / "state/.pulumi/stacks" / PROJECT / f"{STACK}.json").read_text()
    )
    assert written["version"] == 3
    assert written["checkpoint"]["stack"] == f"organization/{PROJECT}/{STACK}"
    latest = written["checkpoint"]["latest"]
    assert latest["secrets_providers"] == {"type": "passphrase", "state": {"salt": SALT}}
    assert latest["manifest"]["magic"] == "294a"  # a hash of the CLI version only
    assert latest["manifest"]["time"] != "2026-12-02T05:35:52Z"
    assert subject.stack_state("ns", "db", definite=True) == StackState(True, 0)
    assert not [path for path in work.iterdir() if path.name.endswith(".new")]


def test_without_a_template_the_cli_creates_the_stack(tmp_path: Path) -> None:
    subject = driver(f"file://{tmp_path / 'state'}", tmp_path)
    subject._command = RecordingCommand({})
    subject._stack("ns", "db", _no_program)
    assert subject._command.words() == ["stack init"]


@pytest.mark.parametrize(
    ("config", "latest"),
    [
        ({"encryptionsalt": SALT, "config": {"p:key": "value"}}, {}),
        ({"encryptionsalt": "v1:other"}, {}),
        (None, {"resources": [{"urn": "urn:pulumi:x", "type": "pulumi:pulumi:Stack"}]}),
        (None, {"pending_operations": [{"type": "creating"}]}),
        (None, {"secrets_providers": {"type": "cloud", "state": {"url": "awskms://k"}}}),
    ],
    ids=["other configuration", "another salt", "resources", "pending", "another provider"],
)
def test_only_an_empty_passphrase_stack_is_a_template(
    tmp_path: Path, config: dict[str, Any] | None, latest: dict[str, Any]
) -> None:
    write_cli_stack(tmp_path, "ns.first", config=config, **latest)
    found = backend_files.stack_template(tmp_path / "state", PROJECT, "ns.first", tmp_path / "work")
    assert found is None


def test_a_stack_created_by_the_cli_is_a_template(tmp_path: Path) -> None:
    write_cli_stack(tmp_path, "ns.first")
    found = backend_files.stack_template(tmp_path / "state", PROJECT, "ns.first", tmp_path / "work")
    assert found is not None
    assert found.organization_and_project == f"organization/{PROJECT}"
