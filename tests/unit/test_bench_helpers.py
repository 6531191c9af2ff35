"""bench's pure helpers: percentiles, logfmt lines, /proc parsing, burst and restart
summaries, port choice, targets, the backup-and-restore scenario's scripts, parsers, Job
times and page. No timings asserted: the inputs are made up, or
saved results under docs/ that a page is rendered from."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bench.__main__ import default_out, parse
from bench.backup_restore import (
    backup_restore_results,
    newest_dump,
    stalled_message,
)
from bench.burst import burst_results
from bench.cluster import LAYOUT_SOURCE, ephemeral_low, flag_value, pick_ports, port_names
from bench.dataset import (
    BASELINE_SCRIPT,
    FILL_SCRIPT,
    SQL_SCRIPT,
    Baseline,
    Filled,
    TableCheck,
    fill_job,
    parse_baseline,
    parse_fill,
    parse_table_check,
    phase_timeout_s,
    storage_size,
    table_check_sql,
)
from bench.jobs import job_times
from bench.machine import cpu_model, mem_total_kib
from bench.objects import condition_of, manifest
from bench.procfs import parse_stat, parse_vm_rss_kib
from bench.report import render
from bench.restart import restart_targets
from bench.stats import (
    burst_summary,
    first_message_at,
    parse_logfmt,
    percentile,
    ratio,
    reconciled_lines,
    steady_state,
)
from bench.targets import check

pytestmark = pytest.mark.unit


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0], 100) == 2.0
    assert percentile([5.0], 95) == 5.0
    assert percentile(list(map(float, range(1, 11))), 95) == pytest.approx(9.55)


def test_percentile_rejects_nothing_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="within"):
        percentile([1.0], 101)


def test_logfmt_reads_bare_and_quoted_values() -> None:
    line = 'ts=2026-11-26T11:59:16.123+00:00 level=info msg=reconciled note="a \\"b\\" c" n=1'
    assert parse_logfmt(line) == {
        "ts": "2026-11-26T11:59:16.123+00:00",
        "level": "info",
        "msg": "reconciled",
        "note": 'a "b" c',
        "n": "1",
    }


def test_reconciled_lines_give_start_and_duration() -> None:
    lines = [
        "ts=2026-11-26T12:00:10.000+00:00 level=info logger=x msg=starting phase=start",
        "ts=2026-11-26T12:00:10.000+00:00 level=info logger=reconciler.executor"
        " msg=reconciled instance=ns/a phase=deploy outcome=done duration_s=4.5",
    ]
    (found,) = reconciled_lines(lines)
    assert (found.instance, found.action, found.outcome) == ("ns/a", "deploy", "done")
    assert found.ended - found.started == pytest.approx(4.5)
    assert found.around_engine_s is None, "a line without the engine's split"


def test_a_deploy_line_splits_into_engine_resource_steps_and_the_rest() -> None:
    line = (
        "ts=2026-11-26T12:00:10.000+00:00 level=info logger=reconciler.executor msg=reconciled"
        " instance=ns/a phase=deploy outcome=done duration_s=4.5 engine_s=1.2 resources_s=3.0"
    )
    (found,) = reconciled_lines([line])
    assert (found.engine_s, found.resources_s) == (1.2, 3.0)
    assert found.around_engine_s == pytest.approx(0.3)


def test_proc_stat_with_spaces_and_parens_in_the_name() -> None:
    rest = " ".join(["S", "7", *["0"] * 9, "10", "20", "3", "4", *["0"] * 30])
    stat = parse_stat(f"42 (a (weird) name) {rest}")
    assert (stat.pid, stat.ppid, stat.cpu_ticks) == (42, 7, 37)


def test_vm_rss_and_machine_fields() -> None:
    assert parse_vm_rss_kib("Name:\tpython\nVmRSS:\t  111540 kB\n") == 111540
    assert parse_vm_rss_kib("Name:\tkthreadd\n") == 0
    assert cpu_model("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n") == "Some CPU @ 2.0GHz"
    assert mem_total_kib("MemTotal:        8000000 kB\n") == 8000000


def test_burst_summary_counts_from_the_first_apply() -> None:
    applied = [100.0, 100.5, 101.0]
    seen = {"a": 110.0, "b": 120.0, "c": 130.0}
    assert burst_summary(applied, seen) == {
        "objects": 3,
        "apply_span_s": 1.0,
        "first_ready_s": 10.0,
        "half_ready_s": 20.0,
        "all_ready_s": 30.0,
        "instances_per_minute": 6.0,
    }


def test_burst_summary_needs_something_to_summarize() -> None:
    with pytest.raises(ValueError, match="needs"):
        burst_summary([], {})


def test_ratio_is_none_without_both_sides() -> None:
    assert ratio(30.0, 12.0) == 2.5
    assert ratio(None, 12.0) is None
    assert ratio(30.0, None) is None
    assert ratio(30.0, 0.0) is None


def _line(ts: str, instance: str, phase: str) -> str:
    return (
        f"ts=2026-11-26T12:00:{ts}+00:00 level=debug logger=reconciler.executor"
        f" msg=reconciled instance={instance} phase={phase} outcome=done duration_s=0.01"
    )


def test_steady_state_is_the_line_that_completes_the_set() -> None:
    lines = [
        'ts=2026-11-26T12:00:01.000+00:00 level=info msg=starting phase=start toolchain="{}"',
        'ts=2026-11-26T12:00:02.000+00:00 level=info msg="watch:ns: listed 2 objects"',
        _line("03.000", "ns/a", "in-sync"),
        _line("03.500", "ns/a", "in-sync"),  # a second pass of the same object
        _line("04.000", "other/x", "in-sync"),  # not expected
        _line("05.000", "ns/b", "in-sync"),
        _line("06.000", "ns/b", "deploy"),
    ]
    state = steady_state(lines, ["ns/a", "ns/b"])
    assert state.missing == frozenset()
    assert state.reached_at == first_message_at([lines[5]], "reconciled")
    assert state.actions == {"in-sync": 4, "deploy": 1}
    assert state.deploys == 1
    assert first_message_at(lines, "starting") == first_message_at(lines[:1], "start")
    assert first_message_at(lines, "listed") is not None
    assert first_message_at(lines, "nothing like it") is None


def test_steady_state_is_not_reached_while_an_object_is_missing() -> None:
    state = steady_state([_line("03.000", "ns/a", "in-sync")], ["ns/a", "ns/b"])
    assert state.reached_at is None
    assert state.missing == frozenset({"ns/b"})
    assert state.deploys == 0


def test_port_names_come_from_the_layout_source() -> None:
    source = "class Other:\n    x: int\n\nclass Ports:\n    etcd_client: int\n    kwok: int\n"
    assert port_names(source) == ("etcd_client", "kwok")
    real = port_names(LAYOUT_SOURCE.read_text())
    assert {"apiserver", "etcd_client", "kwok", "reconciler"} <= set(real)
    with pytest.raises(ValueError, match="Ports"):
        port_names("x = 1\n")


def _seeded() -> random.Random:
    return random.Random(7)


def test_ports_are_picked_free_and_below_the_ephemeral_range() -> None:
    assert ephemeral_low("32768\t60999\n") == 32768
    taken = {20000 + n for n in range(0, 12000, 2)}
    ports = pick_ports(12, 20000, 32768, lambda port: port not in taken, _seeded())
    assert len(set(ports)) == 12
    assert all(20000 <= port < 32768 and port not in taken for port in ports)
    with pytest.raises(ValueError, match="too few"):
        pick_ports(12, 32000, 32768, lambda _port: True, _seeded())
    with pytest.raises(RuntimeError, match="free ports"):
        pick_ports(12, 20000, 32768, lambda _port: False, _seeded())


def test_flag_value_reads_one_flag_of_an_argv() -> None:
    argv = ["kube-controller-manager", "--pvclaimbinder-sync-period=2s", "--leader-elect=false"]
    assert flag_value(argv, "--pvclaimbinder-sync-period") == "2s"
    assert flag_value(argv, "--profiling") is None


def test_targets_compare_what_was_measured() -> None:
    assert check("x", {"limit": 300.0, "unit": "s"}, 250.0)["met"] is True
    assert check("x", {"limit": 0, "unit": "runs"}, 1)["met"] is False
    assert check("x", {"limit": 150.0, "unit": "MiB"}, None)["met"] is None


def _cell(objects: int, all_ready_s: float, peak_mib: float) -> dict[str, Any]:
    side = {
        "all_ready_s": all_ready_s,
        "half_ready_s": all_ready_s / 2,
        "instances_per_minute": 1.0,
        "apply_span_s": 0.1,
        "peak_rss": {"peak_mib": peak_mib, "processes_at_peak": 9},
        "cpu_s_per_instance": 1.0,
    }
    return {
        "objects": objects,
        "workers": 2,
        "load_average_at_start": [1.0, 1.0, 1.0],
        "reconciler": {**side, "reconciles": {"deploy_lines": objects, "deploy_s": None}},
        "baseline": side,
        "ratio_all_ready_reconciler_over_baseline": 1.0,
        "cleanup_s": 3.0,
    }


def test_burst_targets_and_page_show_the_measured_values() -> None:
    cells = [_cell(10, 40.0, 700.0), _cell(100, 321.5, 1400.0)]
    results = burst_results(cells)
    rows = results["burst"]["targets"]
    assert [(row["measured"], row["met"]) for row in rows] == [(321.5, False), (1400.0, True)]
    page = render(
        {
            "scenario": "burst",
            "date": "d",
            "command": "c",
            "machine": _MACHINE,
            "options": {"resync_s": 10.0},
            **results,
        },
        "docs/benchmarks-burst-100.json",
    )
    assert "the raw results are in\ndocs/benchmarks-burst-100.json." in page
    assert "321.5 s" in page
    assert "**missed**" in page
    assert "1400 MiB" in page


def test_restart_targets_only_claim_idle_rss_for_the_issues_object_count() -> None:
    measured = {
        "objects": 3,
        "idle_rss_objects_m": {"median_mib": 120.0},
        "restart": {"engine_runs_deploy_lines": 0, "last_update_ids_changed": 0},
        "setup": {"peak_rss": {"peak_mib": 500.0}},
    }
    rows = restart_targets(measured)
    assert rows[0]["measured"] is None
    assert [row["met"] for row in rows[1:]] == [True, True, True]
    measured["objects"] = 100
    assert restart_targets(measured)[0]["measured"] == 120.0


_MACHINE = {
    key: "x"
    for key in (
        "nproc",
        "mem_total_mib",
        "cpu_model",
        "kernel",
        "python",
        "go",
        "pulumi_cli",
        "pulumi_sdk",
        "pulumi_kubernetes_sdk",
        "load_average_at_start",
    )
}


# -- backup and restore ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shell", "script"), [("sh", FILL_SCRIPT), ("bash", BASELINE_SCRIPT), ("bash", SQL_SCRIPT)]
)
def test_the_scripts_are_valid_shell(shell: str, script: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    checked = subprocess.run([shell, "-n"], input=script, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr


def test_fill_job_reaches_the_service_with_the_instances_password() -> None:
    job = fill_job(
        name="bench-fill",
        service="br",
        database="bench",
        secret="br-credentials",
        key="password",
        size_mb=100,
    )
    assert job.spec.active_deadline_seconds == int(phase_timeout_s(100))
    assert job.spec.backoff_limit == 0
    (container,) = job.spec.template.spec.containers
    assert (container.image, container.image_pull_policy) == ("mysql:5.7", "Never")
    assert container.command == ["sh", "-c", FILL_SCRIPT]
    env = {variable.name: variable for variable in container.env}
    assert env["MYSQL_HOST"].value == "br"
    assert env["TARGET_MIB"].value == "100"
    assert env["MYSQL_PWD"].value is None
    selector = env["MYSQL_PWD"].value_from.secret_key_ref
    assert (selector.name, selector.key) == ("br-credentials", "password")


def test_the_scripts_outputs_are_parsed_from_their_last_line() -> None:
    log = "fill: 2 rows, 16384 bytes before this round\nfill rows=4096 data_length=5275648\n"
    assert parse_fill(log) == Filled(rows=4096, data_length=5275648)
    out = "baseline dump_bytes=123 dump_start=10.5 dump_end=12.0 pipe_end=15.25\n"
    assert parse_baseline(out) == Baseline(dump_bytes=123, dump_only_s=1.5, pipe_s=3.25)
    assert parse_table_check("4096\nbench.filler\t98765\n") == TableCheck(4096, "98765")
    with pytest.raises(ValueError, match="no `fill"):
        parse_fill("ERROR 2002 (HY000): Can't connect\n")
    with pytest.raises(ValueError, match="count and a checksum"):
        parse_table_check("4096\n")
    assert "`bench_copy`.`filler`" in table_check_sql("bench_copy")


def test_storage_size_covers_the_data_and_its_copy() -> None:
    assert storage_size(5) == "1Gi"
    assert storage_size(1000) == "3Gi"
    body = manifest("ns", "br", Path("/h"), data_dir="data-recreated", storage_size="3Gi")
    assert body["spec"]["host_path"] == "/h/ns/br/data-recreated"
    assert body["spec"]["backup"]["host_path"] == "/h/ns/br/backup"
    assert body["spec"]["storage_size"] == "3Gi"
    assert manifest("ns", "br", Path("/h"))["spec"]["host_path"] == "/h/ns/br/data"


def _at(second: int) -> datetime:
    return datetime(2026, 11, 26, 12, 0, second, tzinfo=UTC)


def _pod(created: int, started: int | None, finished: int | None, code: int) -> client.V1Pod:
    terminated = (
        None
        if started is None
        else client.V1ContainerStateTerminated(
            exit_code=code, started_at=_at(started), finished_at=_at(finished or started)
        )
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=f"p{created}", creation_timestamp=_at(created)),
        status=client.V1PodStatus(
            container_statuses=[
                client.V1ContainerStatus(
                    name="c",
                    image="i",
                    image_id="",
                    ready=False,
                    restart_count=0,
                    state=client.V1ContainerState(terminated=terminated),
                )
            ]
        ),
    )


def test_job_times_take_the_newest_terminated_pod() -> None:
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="br-backup-1"),
        status=client.V1JobStatus(
            start_time=_at(1), completion_time=_at(20), succeeded=1, failed=1
        ),
    )
    times = job_times(job, [_pod(1, 2, 5, 1), _pod(6, 8, 19, 0)])
    assert (times.job_s, times.container_s, times.exit_code) == (19.0, 11.0, 0)
    assert (times.succeeded, times.failed) == (1, 1)
    running = client.V1Job(
        metadata=client.V1ObjectMeta(name="br-backup-1"),
        status=client.V1JobStatus(start_time=_at(1)),
    )
    times = job_times(running, [_pod(1, None, None, 0)])
    assert (times.job_s, times.container_s, times.exit_code) == (None, None, None)
    assert times.to_dict()["job_s"] is None


def test_newest_dump_is_the_last_by_name(tmp_path: Path) -> None:
    assert newest_dump(tmp_path) is None
    for name in (
        "dump-20261126T120000Z-000.sql",
        "dump-20261126T120000Z-001.sql",
        ".dump-inprogress.12",
    ):
        (tmp_path / name).write_text("x")
    assert newest_dump(tmp_path) == tmp_path / "dump-20261126T120000Z-001.sql"


def test_conditions_and_stalled_messages() -> None:
    obj = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "Stalled", "status": "True", "reason": "R", "message": "m"},
            ]
        }
    }
    assert condition_of(obj, "Ready") == {"type": "Ready", "status": "False"}
    assert condition_of(obj, "BackupReady") is None
    assert stalled_message(obj) == "R: m"
    assert stalled_message({"status": {}}) is None


def _br_cell(size_mb: int, pipe_s: float, backup_s: float, restore_s: float) -> dict[str, Any]:
    return {
        "size_mb": size_mb,
        "server_version": "10.11.99-MariaDB",
        "generated": {"rows": 7, "data_length_mb": float(size_mb), "fill_job": {"job_s": 1.0}},
        "baseline": {"pipe_s": pipe_s, "dump_only_s": 1.0, "dump_mb": 2.0},
        "backup": {"job": {"job_s": backup_s, "container_s": 1.0}, "dump_mb": 2.5},
        "restore": {"job": {"job_s": restore_s}, "rows_match": True, "checksum_match": True},
        "backup_plus_restore_s": backup_s + restore_s,
        "ratio_backup_restore_over_pipe": round((backup_s + restore_s) / pipe_s, 2),
    }


def test_backup_restore_targets_and_page_show_the_measured_ratio() -> None:
    failed = {
        "size_mb": 1000,
        "error": "restored TableCheck(rows=1) ...",
        "load_average_at_start": [],
    }
    results = backup_restore_results([_br_cell(100, 10.0, 9.0, 4.5), failed])
    rows = results["backup_restore"]["targets"]
    assert [(row["measured"], row["met"]) for row in rows] == [(1.35, False), (None, None)]
    page = render(
        {
            "scenario": "backup-restore",
            "date": "d",
            "command": "c",
            "machine": _MACHINE,
            "options": {"workers": 2, "resync_s": 10.0},
            **results,
        },
        "docs/benchmarks-backup-restore-1gb.json",
    )
    assert "docs/benchmarks-backup-restore-1gb.json. Do not edit" in page
    assert "**1.35x**" in page
    assert "≤ 1.2x (**missed**)" in page
    assert "10.11.99-MariaDB" in page
    assert "restored TableCheck" in page


def test_backup_restore_command_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("bench.__main__.shutil.which", lambda _name: "/bin/pulumi")
    args = parse(["--backup-restore"])
    assert (args.scenario, args.backup_restore, args.node) == (
        "backup-restore",
        (100, 1000),
        "real",
    )
    assert parse(["--backup-restore", "5", "--no-lock", "--out", str(tmp_path / "x.json")]).no_lock
    for argv in (["--backup-restore", "5", "--no-lock"], ["--no-lock", "--out", "docs/x.json"]):
        with pytest.raises(SystemExit):
            parse(argv)


def test_only_one_at_a_time_runs_on_the_real_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.__main__.shutil.which", lambda _name: "/bin/pulumi")
    args = parse(["--instances", "3", "--node", "real"])
    assert (args.scenario, args.node) == ("one-at-a-time", "real")
    assert default_out(args) == Path("docs/benchmarks-real-node.json"), "not kwok's page"
    kwok = parse(["--instances", "3"])
    assert (kwok.node, default_out(kwok)) == ("kwok", Path("docs/benchmarks.json"))
    for argv in (["--burst", "10", "--node", "real"], ["--restart", "5", "--node", "real"]):
        with pytest.raises(SystemExit):
            parse(argv)


def test_one_at_a_time_pages_show_the_engine_split_only_where_it_was_logged() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs"
    real = "docs/benchmarks-real-node.json"
    page = render(json.loads((docs / "benchmarks-real-node.json").read_text()), real)
    assert "`hack/cluster up --node=real`" in page
    assert "… of it: the engine's own cost" in page
    assert f"the raw results are in\n{real}." in page
    older = "docs/benchmarks-before-cli-runs.json"
    page = render(json.loads((docs / "benchmarks-before-cli-runs.json").read_text()), older)
    assert "`hack/cluster up --node=kwok`" in page
    assert "… of it" not in page
    assert "did not expose the readiness wait" in page
