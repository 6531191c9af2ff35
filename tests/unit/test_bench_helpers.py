"""bench's pure helpers: percentiles, the reconciler's log lines and what they say about an
object or a run, /proc and /metrics parsers, port choice, kwok nodes, targets, the
command line and the pages. No timings asserted: every input is made up."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import default_out, parse
from bench.cluster import (
    LAYOUT_SOURCE,
    ephemeral_low,
    flag_value,
    kwok_node,
    pick_ports,
    port_names,
)
from bench.dumps import Step
from bench.dumps import markdown as dump_page
from bench.dumps import ratio as dump_ratio
from bench.engine import markdown as engine_page
from bench.report import _thin, render
from bench.runner import condition_of, manifest, ready_at
from bench.scenarios import BROKEN, nodes_for, scale_targets
from bench.stats import (
    burst_summary,
    check,
    cpu_model,
    first_message_at,
    first_pass,
    machine_ticks,
    mem_total_kib,
    object_split,
    parse_logfmt,
    parse_metrics,
    parse_stat,
    parse_vm_rss_kib,
    percentile,
    ratio,
    reconcile_order,
    reconciled_lines,
    summarize,
    tree_of,
    where_time_went,
)

pytestmark = pytest.mark.unit


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0], 100) == 2.0
    assert percentile([5.0], 95) == 5.0
    assert percentile(list(map(float, range(1, 11))), 95) == pytest.approx(9.55)
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="within"):
        percentile([1.0], 101)


def test_summarize_skips_names_and_columns_without_values() -> None:
    rows = [{"name": "a", "x": 1.0, "y": None}, {"name": "b", "x": 3.0, "y": None}]
    assert summarize(rows) == {"x": {"p50": 2.0, "p95": 2.9, "min": 1.0, "max": 3.0, "mean": 2.0}}
    assert summarize([]) == {}
    assert ratio(30.0, 12.0) == 2.5
    assert ratio(None, 12.0) is None
    assert ratio(30.0, 0.0) is None


def test_logfmt_reads_bare_and_quoted_values() -> None:
    line = 'ts=2026-11-26T11:59:16.123+00:00 level=info msg=reconciled note="a \\"b\\" c" n=1'
    assert parse_logfmt(line) == {
        "ts": "2026-11-26T11:59:16.123+00:00",
        "level": "info",
        "msg": "reconciled",
        "note": 'a "b" c',
        "n": "1",
    }


def _line(second: float, instance: str, phase: str, duration: float, extra: str = "") -> str:
    return (
        f"ts=2026-12-01T12:00:{second:06.3f}+00:00 level=info logger=reconciler.executor"
        f" msg=reconciled instance={instance} phase={phase} outcome=done duration_s={duration}"
        f"{extra}"
    )


def _at(second: float) -> float:
    return first_message_at([_line(second, "x/y", "ready", 0)], "reconciled") or 0.0


# One new object without the readiness gate, as the reconciler logs it: a reconcile that
# deployed `restoring` and waited, two quiet wait passes, the one that deployed `serving`.
NEW_OBJECT = [
    'ts=2026-12-01T12:00:00.500+00:00 level=info msg=starting phase=start toolchain="{}"',
    _line(
        14.0, "ns/a", "wait", 3.0, " reason=Restoring engine_runs=1 engine_s=1.5 resources_s=0.3"
    ),
    _line(14.1, "ns/a", "wait", 0.05, " reason=Restoring"),
    _line(15.0, "ns/other", "deploy", 9.0, " engine_runs=1 engine_s=1.0 resources_s=0.2"),
    _line(16.5, "ns/a", "wait", 0.1, " reason=Restoring"),
    _line(19.0, "ns/a", "deploy", 2.0, " engine_runs=1 engine_s=1.2 resources_s=0.4"),
    _line(25.0, "ns/a", "ready", 0.1),
]


GATED_OBJECT = [
    _line(14.0, "ns/a", "deploy", 3.0, " engine_runs=1 engine_s=1.5 resources_s=0.3"),
    _line(16.5, "ns/a", "wait", 0.1, " reason=Restoring"),
    _line(19.0, "ns/a", "ready", 0.2),
]


def test_a_gated_object_is_made_ready_by_a_pass_without_an_engine_run() -> None:
    split = object_split(reconciled_lines(GATED_OBJECT), "ns/a", _at(10.0), _at(19.25))
    assert split["deploy_reconcile_s"] == pytest.approx(3.0)
    assert split["between_s"] == pytest.approx(4.8)  # deploy ended 14.0, ready started 18.8
    assert split["ready_reconcile_s"] == pytest.approx(0.2)
    assert split["ready_seen_after_s"] == pytest.approx(0.25)
    assert split["engine_runs"] == 1


def test_reconciled_lines_carry_the_engine_runs_and_the_reason() -> None:
    first, quiet, *_ = reconciled_lines(NEW_OBJECT)
    assert (first.instance, first.action, first.reason, first.engine_runs) == (
        "ns/a",
        "wait",
        "Restoring",
        1,
    )
    assert (first.engine_s, first.resources_s) == (1.5, 0.3)
    assert first.ended - first.started == pytest.approx(3.0)
    assert (quiet.engine_runs, quiet.engine_s) == (0, None)
    assert len(reconciled_lines([*NEW_OBJECT, "msg=reconciled instance=broken"])) == 6


def test_an_objects_time_splits_by_its_two_engine_reconciles() -> None:
    split = object_split(reconciled_lines(NEW_OBJECT), "ns/a", _at(10.0), _at(19.25))
    assert split == pytest.approx(
        {
            "total_s": 9.25,
            "queue_wait_s": 1.0,  # applied 10.0, the first reconcile started at 11.0
            "deploy_reconcile_s": 3.0,
            "between_s": 3.0,  # the first deploy ended 14.0, the second started 17.0
            "ready_reconcile_s": 2.0,
            "ready_seen_after_s": 0.25,
            "engine_s": 2.7,
            "resources_s": 0.7,
            "around_engine_s": 1.6,
            "engine_runs": 2,
            "passes": 4,  # the later `ready` pass started after Ready was seen
        }
    )


def test_an_object_ready_in_its_deploy_reconcile_has_nothing_between() -> None:
    lines = reconciled_lines([_line(13.0, "ns/a", "deploy", 2.0, " engine_runs=2 engine_s=1")])
    split = object_split(lines, "ns/a", _at(10.0), _at(13.5))
    assert (split["deploy_reconcile_s"], split["between_s"]) == (2.0, None)
    assert (split["ready_reconcile_s"], split["engine_runs"]) == (2.0, 2)
    nothing = object_split(lines, "ns/b", _at(10.0), _at(13.5))
    assert (nothing["queue_wait_s"], nothing["engine_s"], nothing["passes"]) == (None, None, 0)


def test_where_time_went_adds_up_passes_engine_runs_and_reasons() -> None:
    went = where_time_went(reconciled_lines(NEW_OBJECT))
    assert went["actions"] == {
        "wait": {"passes": 3, "seconds": 3.15},
        "deploy": {"passes": 2, "seconds": 11.0},
        "ready": {"passes": 1, "seconds": 0.1},
    }
    assert (went["engine_runs"], went["engine_s"], went["resources_s"]) == (3, 3.7, 0.9)
    assert went["reasons"] == {"Restoring": 3}


def test_reconcile_order_tells_when_the_first_was_ready_and_first_reconciles_ended() -> None:
    lines = reconciled_lines(
        [
            _line(13.0, "ns/a", "wait", 3.0, " engine_runs=1"),  # started 10.0
            _line(12.5, "ns/b", "wait", 1.5, " engine_runs=1"),  # started 11.0, ended first
            _line(20.0, "ns/b", "ready", 2.0),  # made Ready without an engine run
            _line(25.0, "ns/a", "deploy", 2.0, " engine_runs=1"),
            _line(26.0, "other/c", "wait", 9.0, " engine_runs=1"),
        ]
    )
    assert reconcile_order(lines, {"ns/a", "ns/b"}) == {
        "first_ready_reconcile_s": 10.0,
        "last_first_reconcile_s": 1.0,
    }
    assert reconcile_order(lines, {"x/y"}) == {
        "first_ready_reconcile_s": None,
        "last_first_reconcile_s": None,
    }


def test_first_pass_is_the_ready_line_that_completes_the_set() -> None:
    lines = [
        _line(3.0, "ns/a", "ready", 0.01),
        _line(3.5, "ns/a", "ready", 0.01),
        _line(4.0, "other/x", "ready", 0.01),
        _line(5.0, "ns/b", "ready", 0.01),
        _line(6.0, "ns/b", "deploy", 1.0, " engine_runs=1"),
    ]
    found = first_pass(reconciled_lines(lines), ["ns/a", "ns/b"])
    assert (found.missing, found.reached_at) == (frozenset(), _at(5.0))
    assert found.actions == {"ready": 4, "deploy": 1}
    assert found.engine_runs == 1
    waiting = first_pass(reconciled_lines(lines[:1]), ["ns/a", "ns/b"])
    assert (waiting.reached_at, waiting.missing) == (None, frozenset({"ns/b"}))
    assert first_message_at(NEW_OBJECT, "starting") == _at(0.5)
    assert first_message_at(NEW_OBJECT, "nothing like it") is None


def test_burst_summary_counts_from_the_first_apply() -> None:
    seen = {"a": 110.0, "b": 120.0, "c": 130.0}
    assert burst_summary([100.0, 100.5, 101.0], seen) == {
        "objects": 3,
        "apply_span_s": 1.0,
        "first_ready_s": 10.0,
        "half_ready_s": 20.0,
        "all_ready_s": 30.0,
        "instances_per_minute": 6.0,
    }
    with pytest.raises(ValueError, match="needs"):
        burst_summary([], {})


def test_proc_parsers() -> None:
    rest = " ".join(["S", "7", *["0"] * 9, "10", "20", "3", "4", *["0"] * 30])
    stat = parse_stat(f"42 (a (weird) name) {rest}")
    assert (stat.pid, stat.ppid, stat.own_ticks, stat.reaped_ticks) == (42, 7, 30, 7)
    stats = {
        pid: parse_stat(f"{pid} (p) S {ppid} " + " ".join(["0"] * 40))
        for pid, ppid in ((1, 0), (10, 1), (11, 10), (12, 11), (20, 1))
    }
    assert sorted(tree_of(10, stats)) == [10, 11, 12]
    assert tree_of(99, stats) == []
    assert parse_vm_rss_kib("Name:\tpython\nVmRSS:\t  111540 kB\n") == 111540
    assert parse_vm_rss_kib("Name:\tkthreadd\n") == 0
    assert machine_ticks("cpu  10 1 5 100 4 0 2 0 0 0\ncpu0 1 1 1 1\n") == (18, 122)
    assert cpu_model("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n") == "Some CPU @ 2.0GHz"
    assert mem_total_kib("MemTotal:        8000000 kB\n") == 8000000


def test_metrics_are_read_by_name_and_labels() -> None:
    text = (
        "# HELP mysql_operator_queue_depth Keys waiting\n"
        "mysql_operator_queue_depth 3.0\n"
        'mysql_operator_instances{ready="False",reason="Restoring"} 12.0\n'
        "python_gc_objects_collected_total 5.0\n"
    )
    assert parse_metrics(text) == {
        "queue_depth": 3.0,
        'instances{ready="False",reason="Restoring"}': 12.0,
    }


def test_port_names_come_from_the_layout_source() -> None:
    source = "class Other:\n    x: int\n\nclass Ports:\n    etcd_client: int\n    kwok: int\n"
    assert port_names(source) == ("etcd_client", "kwok")
    assert {"apiserver", "etcd_client", "kwok", "reconciler"} <= set(
        port_names(LAYOUT_SOURCE.read_text())
    )
    with pytest.raises(ValueError, match="Ports"):
        port_names("x = 1\n")


def test_ports_are_picked_free_and_below_the_ephemeral_range() -> None:
    assert ephemeral_low("32768\t60999\n") == 32768
    taken = {20000 + n for n in range(0, 12000, 2)}
    seeded = random.Random(7)
    ports = pick_ports(12, 20000, 32768, lambda port: port not in taken, seeded)
    assert len(set(ports)) == 12
    assert all(20000 <= port < 32768 and port not in taken for port in ports)
    with pytest.raises(ValueError, match="too few"):
        pick_ports(12, 32000, 32768, lambda _port: True, seeded)
    with pytest.raises(RuntimeError, match="free ports"):
        pick_ports(12, 20000, 32768, lambda _port: False, seeded)
    argv = ["kube-controller-manager", "--pvclaimbinder-sync-period=2s", "--leader-elect=false"]
    assert flag_value(argv, "--pvclaimbinder-sync-period") == "2s"
    assert flag_value(argv, "--profiling") is None


def test_extra_kwok_nodes_are_played_by_kwok_with_pod_cidrs_of_their_own() -> None:
    nodes = [kwok_node(index) for index in range(300)]
    assert nodes[0]["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    cidrs = [node["spec"]["podCIDR"] for node in nodes]
    assert len(set(cidrs)) == 300
    assert (cidrs[0], cidrs[255], cidrs[256]) == (
        "10.245.0.0/24",
        "10.245.255.0/24",
        "10.246.0.0/24",
    )
    assert len({node["metadata"]["name"] for node in nodes}) == 300
    assert nodes_for(10) == 0
    # 1,000 server pods and as many restore Job pods, a quarter to spare: 10 nodes of 250,
    # one of them the cluster's own.
    assert nodes_for(1000) == 9


def test_the_objects_manifest_and_its_broken_variants() -> None:
    body = manifest("ns", "a", Path("/h"))
    assert body["spec"]["host_path"] == "/h/ns/a/data"
    assert body["spec"]["backup"] == {"host_path": "/h/ns/a/backup"}
    no_class = manifest("ns", "a", Path("/h"), {"storage_class": "no-such-class"})["spec"]
    assert "host_path" not in no_class
    assert "backup" not in no_class
    assert no_class["storage_class"] == "no-such-class"
    no_secret = manifest("ns", "a", Path("/h"), {"passwordSecretRef": {"name": "m"}})["spec"]
    assert "password" not in no_secret
    assert no_secret["host_path"] == "/h/ns/a/data"
    assert len(BROKEN) == 10
    assert sorted({reason for _, reason in BROKEN.values()}) == [
        "CrashLooping",
        "ImagePullFailed",
        "RestoreRetrying",
        "SecretMissing",
        "VolumePending",
    ]


def test_ready_means_true_at_the_generation() -> None:
    obj: dict[str, Any] = {
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Stalled", "status": "False"},
            ],
        }
    }
    assert ready_at(obj, 1)
    assert not ready_at(obj, 2)
    assert not ready_at(None, 1)
    assert condition_of(obj, "Stalled") == {"type": "Stalled", "status": "False"}
    assert condition_of(obj, "BackupReady") is None
    obj["status"]["conditions"][0]["status"] = "False"
    assert not ready_at(obj, 1)


def test_targets_compare_what_was_measured_and_only_at_their_size() -> None:
    assert check("x", {"limit": 300.0, "unit": "s"}, 250.0)["met"] is True
    assert check("x", {"limit": 0, "unit": "runs"}, 1)["met"] is False
    assert check("x", {"limit": 150.0, "unit": "MiB"}, None)["met"] is None
    results: dict[str, Any] = {
        "objects": 200,
        "burst": {"all_ready_s": 300.0},
        "peak_rss": {"peak_mib": 900.0},
        "idle_rss_objects_n": {"median_mib": 150.0},
        "restart": {"engine_runs": 0, "first_pass_s": 20.0},
    }
    rows = scale_targets(results)
    assert [row["measured"] for row in rows] == [None, None, None, 0, None]
    assert "this run: 200" in rows[0]["what"]
    results["objects"] = 1000
    assert [row["met"] for row in scale_targets(results)] == [True, True, True, True, True]


def test_command_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("bench.__main__.shutil.which", lambda _name: "/bin/pulumi")
    default = parse([])
    assert (default.scenario, default.instances, default.resync_period) == ("one-at-a-time", 10, 10)
    assert default_out(default) == Path("docs/benchmarks.json")
    real = parse(["--instances", "3", "--node", "real"])
    assert default_out(real) == Path("docs/benchmarks-real-node.json")
    mix = parse(["--broken-mix"])
    assert (mix.scenario, mix.broken_mix, default_out(mix)) == (
        "broken-mix",
        5,
        Path("docs/benchmarks-broken-mix.json"),
    )
    big = parse(["--scale"])
    assert (big.scale, big.resync_period, default_out(big)) == (
        1000,
        120.0,
        Path("docs/benchmarks-scale.json"),
    )
    assert parse(["--scale", "20", "--resync-period", "5"]).resync_period == 5.0
    assert parse(["--scale", "5", "--no-lock", "--out", str(tmp_path / "x.json")]).no_lock
    for argv in (
        ["--scale", "5", "--no-lock"],
        ["--no-lock", "--out", "docs/x.json"],
        ["--scale", "10", "--node", "real"],
        ["--scale", "0"],
        ["--scale", "10", "--broken-mix"],
    ):
        with pytest.raises(SystemExit):
            parse(argv)


MACHINE = {
    "code": {"commit": "abc1234", "uncommitted": [" M reconciler/queue.py"]},
    "nproc": 2,
    "mem_total_mib": 24000,
    "cpu_model": "cpu",
    "kernel": "k",
    "python": "3.11",
    "pulumi_cli": "v3",
    "pulumi_sdk": "3",
    "pulumi_kubernetes_sdk": "4",
    "load_average_at_start": [4.9, 4.0, 3.0],
}


def _results(scenario: str, **more: Any) -> dict[str, Any]:
    options = {"node": "kwok", "workers": 2, "resync_s": 10.0, "instances": 1, "repetitions": 1}
    return {
        "scenario": scenario,
        "date": "d",
        "command": "c",
        "machine": MACHINE,
        "options": options,
        "load_average_at_end": [5.5, 5.0, 4.0],
        **more,
    }


_WINDOW = {
    "window_s": 30.0,
    "objects": 1,
    "passes": {"ready": 3},
    "ready_passes": 3,
    "engine_runs": 0,
    "last_update_ids_changed": 0,
    "cpu_ms": 9.0,
    "cpu_ms_per_ready_pass": 3.0,
    "cpu_ms_per_second": 0.3,
}


def test_one_at_a_time_page() -> None:
    split = object_split(reconciled_lines(NEW_OBJECT), "ns/a", _at(10.0), _at(19.25))
    reconciler = {"name": "bench-0", **split, "tree_rss_mib_after": 120.0}
    baseline = {
        "name": "bench-0",
        "total_s": 4.0,
        "claims_s": 1.0,
        "deployment_s": 0.5,
        "job_s": 1.5,
    }
    rss = {"median_mib": 110.0, "max_mib": 111.0, "processes": 1}
    page = render(
        _results(
            "one-at-a-time",
            apply_to_ready={
                "reconciler": {"instances": [reconciler], "summary": summarize([reconciler])},
                "baseline": {"instances": [baseline], "summary": summarize([baseline])},
                "ratio_p50": 2.31,
                "overhead_p50_s": 5.25,
                "overhead_p95_s": 5.25,
            },
            noop=_WINDOW,
            zero_objects=_WINDOW,
            idle_rss={"objects_0": rss, "objects_n": rss},
            peak_rss={"peak_mib": 400.0, "processes_at_peak": 3},
            targets=[check("overhead", {"limit": 1.5, "unit": "s"}, 5.25)],
        ),
        "docs/benchmarks.json",
    )
    assert "the raw results are in\ndocs/benchmarks.json." in page
    assert "commit abc1234; differing from it: `M reconciler/queue.py`" in page
    assert "| overhead | ≤ 1.5 s | 5.25 s | **missed** |" in page
    assert "Reconciler / baseline at p50: 2.31x; overhead p50 5.25 s" in page
    assert "| between: claims, pod, restore Job, the watch waking the instance | 3.00 |" in page
    assert "| bench-0 | 9.25 | 1.0 | 3.0 | 3.0 | 2.0 | 2 | 120.0 | 4.0 | 3.0 |" in page
    assert "| CPU per `ready` pass | 3 ms |" in page


def test_broken_mix_page() -> None:
    row = {"name": "valid-0", "total_s": 8.0, "queue_wait_s": 0.1}
    slow = {"name": "valid-0", "total_s": 12.0, "queue_wait_s": 4.0}
    went = where_time_went(reconciled_lines(NEW_OBJECT))
    page = render(
        _results(
            "broken-mix",
            alone={"instances": [row], "summary": summarize([row])},
            beside_broken={"instances": [slow], "summary": summarize([slow])},
            ratio_p50=1.5,
            ratio_p95=1.5,
            broken={
                "reasons_before": {"failing-job": "RestoreRetrying"},
                "reasons_after": {"failing-job": "RestoreRetrying"},
                "reported_after_s": 40.0,
                "during_valid_s": 20.0,
                "reconciles_during_valid": went,
            },
        ),
        "docs/benchmarks-broken-mix.json",
    )
    assert "p50 1.5x, p95 1.5x" in page
    assert "| valid-0 | 8.0 | 0.1 | 12.0 | 4.0 |" in page
    assert "| failing-job | RestoreRetrying | RestoreRetrying |" in page
    assert "the broken ones had 3 engine runs" in page
    assert "| deploy | 2 | 11.0 | 5.5 |" in page


def test_scale_page_and_its_thinned_timeline() -> None:
    sample = {
        "t_s": 30.0,
        "ready": 10,
        "not_ready_by_reason": {"Restoring": 5},
        "queue_depth": 3.0,
        "queue_delayed": 2.0,
        "engine_runs": 25,
        "rss_mib": 500.0,
        "load1": 4.5,
        "cpu_s": {"own": 1.0, "engine": 20.0, "cluster": 5.0, "machine_busy": 40.0},
    }
    timeline = [{**sample, "t_s": float(t)} for t in range(0, 3000, 30)]
    assert len(_thin(timeline)) <= 31
    assert _thin(timeline)[-1] == timeline[-1]
    assert _thin(timeline[:5]) == timeline[:5]
    cpu = {"own_ms": 10_000.0, "engine_ms": 50_000.0, "cluster_ms": 20_000.0}
    rss = {"median_mib": 150.0, "max_mib": 151.0, "processes": 1}
    results = _results(
        "scale",
        objects=20,
        extra_nodes=0,
        peak_rss={"peak_mib": 700.0, "processes_at_peak": 5},
        burst={
            **burst_summary([0.0], {"a": 600.0}),
            "cpu": {**cpu, "machine_busy_ms": 100_000.0, "machine_all_ms": 120_000.0},
            "where_time_went": where_time_went(reconciled_lines(NEW_OBJECT)),
            "worker_busy_fraction": 0.9,
            "first_reconcile_order": {
                "first_ready_reconcile_s": 500.0,
                "last_first_reconcile_s": 400.0,
            },
        },
        timeline=timeline,
        idle_rss_objects_0=rss,
        idle_rss_objects_n=rss,
        resync=_WINDOW,
        restart={
            "starting_line_s": 1.0,
            "first_list_s": 1.1,
            "healthz_ok_s": 1.2,
            "first_pass_s": 30.0,
            "cpu_ms": 9000.0,
            "window_s": 150.0,
            "engine_runs": 0,
            "last_update_ids_changed": 0,
            "passes_by_action": {"ready": 40},
        },
        stop={"exit_code": 0, "took_s": 0.5},
    )
    results["targets"] = scale_targets(results)
    page = render(results, "docs/benchmarks-scale.json")
    assert "| **all Ready** | **600.0 s** |" in page
    assert "| CPU: everything else on the machine (other work) | 20.0 s |" in page
    assert "| CPU per object (python + engine) | 3.0 s |" in page
    assert (
        "| 2970.0 | 10 | Restoring 5 | 3.0 | 2.0 | 25 | 500.0 | 4.5 | 1.0 / 20.0 / 5.0 / 40.0 |"
        in page
    )
    assert "| **every object had a pass** (a `phase=ready` line) | **30.0 s** |" in page
    assert "(this run: 20; not comparable)" in page


def test_a_failed_run_shows_its_error() -> None:
    page = render(_results("scale", error="Traceback ...\nTimeoutError: 3 objects\n"), "x.json")
    assert "## The run failed" in page
    assert "TimeoutError: 3 objects" in page


def dump_step(what: str, wall_s: float, cpu_s: float = 1.0) -> Step:
    return Step(what, wall_s, cpu_s, 100)


def test_the_dump_ratios_are_of_the_medians_of_each_side() -> None:
    steps = [
        dump_step("backup.sh", 12.0),
        dump_step("mysqldump | gzip", 10.0),
        dump_step("backup.sh", 11.0),
        dump_step("mysqldump | gzip", 12.0),
        dump_step("backup.sh", 30.0),  # one slow round moves no median far
        dump_step("mysqldump | gzip", 10.0),
    ]
    found = dump_ratio(steps, "backup.sh", "mysqldump | gzip")
    assert found["ours_wall_s"] == 12.0
    assert found["plain_wall_s"] == 10.0
    assert found["wall_ratio"] == 1.2


def test_the_dump_page_gives_each_verdict_and_escapes_the_pipes() -> None:
    results: dict[str, Any] = {
        "date": "2026-12-02T06:00:00+00:00",
        "command": "python -m bench.dumps",
        "machine": {
            "code": {"commit": "abc1234"},
            "nproc": 2,
            "cpu_model": "AMD EPYC",
            "mem_total_mib": 24105,
            "kernel": "6.18",
            "load_average_at_start": [0.1, 0.2, 0.3],
        },
        "load_average_at_end": [0.4, 0.5, 0.6],
        "table": {"rows": 10, "bytes": 2**30, "load_s": 60.0},
        "steps": [{"what": "mysqldump | gzip", "wall_s": 1.0, "cpu_s": 0.5, "dump_bytes": 9}],
        "backup": {"ours_wall_s": 11, "plain_wall_s": 10, "wall_ratio": 1.1},
        "restore": {"ours_wall_s": 13, "plain_wall_s": 10, "wall_ratio": 1.3},
        "target_ratio": 1.2,
    }
    for side in ("backup", "restore"):
        results[side] |= {"ours_cpu_s": 1.0, "plain_cpu_s": 1.0}
    page = dump_page(results)
    assert "| backup to a directory (a claim) | 11 | 10 | **1.1x** | ≤ 1.2x (met)" in page
    assert "| restore from a directory | 13 | 10 | **1.3x** | ≤ 1.2x (**missed**)" in page
    assert "S3" not in page  # no S3 rows without --s3
    assert "| `mysqldump \\| gzip` | 1.0 | 0.5 | 9 |" in page
    assert "1024 MiB of table data" in page


def test_the_engine_page_compares_each_way_with_one_at_a_time() -> None:
    def way(name: str, wall_s: float, cli: float) -> dict[str, Any]:
        return {
            "way": name,
            "runs": 10,
            "wall_s": wall_s,
            "runs_per_s": round(10 / wall_s, 3),
            "cpu_ms_per_run": {"cli": cli, "provider": 250.0, "kube-apiserver": 300.0},
        }

    results = {
        "machine": {
            "code": {"commit": "abc1234", "uncommitted": []},
            "nproc": 2,
            "cpu_model": "AMD EPYC",
            "mem_total_mib": 24105,
            "kernel": "6.18",
            "python": "3.11.7",
            "pulumi_cli": "v3.274.1",
            "pulumi_sdk": "3.272.0",
            "pulumi_kubernetes_sdk": "4.25.0",
            "load_average_at_start": [0.5, 0.5, 0.5],
        },
        "load_average_at_end": [1.0, 1.0, 1.0],
        "runs": 10,
        "extra_stacks": 1000,
        "ways": [
            way("one at a time", 12.0, 600.0),
            way("two at once", 9.0, 600.0),
            way("one at a time, 1,000 more stacks", 15.0, 900.0),
        ],
    }
    lines = engine_page(results).splitlines()
    assert "| wall time per run, s | 1.20 | 0.90 | 1.50 | 0.75x | 1.25x |" in lines
    assert "| CPU per run, cli, ms | 600 | 600 | 900 | 1.00x | 1.50x |" in lines
    assert "| **CPU per run, all, ms** | 1150 | 1150 | 1450 | 1.00x | 1.26x |" in lines
    assert lines[-1].endswith(
        "need at least 900 s of engine runs alone on this machine, "
        "before any Job, watch or status write."
    )
