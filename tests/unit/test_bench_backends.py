"""bench's state-backends scenario (`python -m bench --backends`): how it finds the
cluster's S3 store, the environment each reconciler gets, the S3 / file ratios, the command
line and the page. No timings asserted: every input is made up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from localcluster import object_store

from bench.__main__ import default_out, options, parse
from bench.cluster import (
    STATE_BUCKET,
    STORE_NAMESPACE,
    STORE_REGION,
    STORE_SECRET,
    exported,
    s3_backend_url,
)
from bench.report import render
from bench.runner import backend_env
from bench.stats import backend_ratios, backend_value, burst_summary, summarize
from tests.unit.test_bench_helpers import MACHINE

pytestmark = pytest.mark.unit

CLUSTER_ENV = """export KUBECONFIG='/tmp/c/kubeconfig'
export AWS_ENDPOINT_URL='http://127.0.0.1:12345'
export AWS_REGION='us-east-1'
export AWS_ACCESS_KEY_ID='local-0a1b2c'
export AWS_SECRET_ACCESS_KEY="$(cat '/tmp/c/minio/secret')"
# a Pulumi state backend in the store: s3://pulumi-state?endpoint=http://127.0.0.1:12345
"""


def test_the_store_is_found_where_the_cluster_publishes_it() -> None:
    assert exported(CLUSTER_ENV, "AWS_ENDPOINT_URL") == "http://127.0.0.1:12345"
    assert exported(CLUSTER_ENV, "AWS_REGION") == "us-east-1"
    # Only single-quoted values are read: the secret key is a command, never a value.
    assert exported(CLUSTER_ENV, "AWS_SECRET_ACCESS_KEY") is None
    assert exported(CLUSTER_ENV, "AWS_ENDPOINT") is None
    assert exported("", "AWS_ENDPOINT_URL") is None


def test_the_store_names_are_those_of_the_cluster() -> None:
    assert (STORE_NAMESPACE, STORE_SECRET, STORE_REGION) == (
        object_store.NAMESPACE,
        object_store.SECRET,
        object_store.REGION,
    )
    assert STATE_BUCKET in object_store.BUCKETS


def test_the_s3_backend_url_has_the_prefix_the_endpoint_and_path_style() -> None:
    assert s3_backend_url("http://127.0.0.1:12345", "bench-x") == (
        "s3://pulumi-state/bench-x?endpoint=http://127.0.0.1:12345&region=us-east-1"
        "&use_path_style=true"
    )


def test_each_backend_gets_only_its_own_backend_settings() -> None:
    outer = {
        "PATH": "/bin",
        "PULUMI_CONFIG_PASSPHRASE": "p",
        "MYSQL_OPERATOR_BACKEND_URL": "s3://elsewhere",
        "AWS_ACCESS_KEY_ID": "outer",
        "AWS_SECRET_ACCESS_KEY": "outer-secret",
        "AWS_ENDPOINT_URL": "http://elsewhere:9000",
        "AWS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt",
    }
    kept = {
        "PATH": "/bin",
        "PULUMI_CONFIG_PASSPHRASE": "p",
        "AWS_CA_BUNDLE": outer["AWS_CA_BUNDLE"],
    }
    assert backend_env(outer) == kept
    assert backend_env(outer, "s3://pulumi-state/x", ("id", "secret")) == {
        **kept,
        "MYSQL_OPERATOR_BACKEND_URL": "s3://pulumi-state/x",
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }
    assert outer["MYSQL_OPERATOR_BACKEND_URL"] == "s3://elsewhere"  # not changed in place


def _row(name: str, total: float, engine: float, queue: float = 0.1) -> dict[str, Any]:
    return {"name": name, "total_s": total, "queue_wait_s": queue, "engine_s": engine}


def _side(url: str, one: list[float], burst: list[float], engine: float) -> dict[str, Any]:
    ones = [_row(f"one-{i}", total, engine) for i, total in enumerate(one)]
    bursts = [_row(f"burst-{i}", total, engine, 2.0) for i, total in enumerate(burst)]
    return {
        "backend_url": url,
        "one_at_a_time": {
            "load_average_before": [1.5, 1.2, 1.0],
            "instances": ones,
            "summary": summarize(ones),
        },
        "burst": {
            "load_average_before": [2.5, 1.5, 1.1],
            **burst_summary([100.0, 100.5], {"burst-0": 100.0 + burst[0], "b": 100 + burst[1]}),
            "instances": bursts,
            "summary": summarize(bursts),
        },
    }


FILE = _side("file:///w/state-file", [8.0, 10.0, 9.0], [12.0, 20.0], 1.5)
S3 = _side("s3://pulumi-state/bench-x?endpoint=e", [10.0, 14.0, 11.0], [15.0, 30.0], 2.4)


def test_a_backend_value_is_a_percentile_of_a_column_or_a_figure_of_its_part() -> None:
    assert backend_value(FILE, "one_at_a_time", "total_s", "p50") == 9.0
    assert backend_value(FILE, "one_at_a_time", "total_s", "p95") == pytest.approx(9.9)
    assert backend_value(FILE, "burst", "all_ready_s", None) == 20.0
    assert backend_value(FILE, "burst", "between_s", "p50") is None
    assert backend_value({"backend_url": "x"}, "burst", "all_ready_s", None) is None


def test_the_ratios_are_s3_over_file() -> None:
    ratios = backend_ratios(FILE, S3)
    assert [(row["file"], row["s3"], row["ratio"]) for row in ratios] == [
        (9.0, 11.0, 1.22),  # one at a time p50
        (pytest.approx(9.9), pytest.approx(13.7), 1.38),  # p95
        (1.5, 2.4, 1.6),  # engine p50
        (20.0, 30.0, 1.5),  # burst, all Ready from the first apply
        (16.0, 22.5, 1.41),  # burst p50 per object
    ]
    assert ratios[0]["what"] == "one at a time: applied → Ready, p50"
    missing = backend_ratios(FILE, {"backend_url": "s3://x"})
    assert [row["ratio"] for row in missing] == [None] * 5


def test_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.__main__.shutil.which", lambda _name: "/bin/pulumi")
    args = parse(["--backends"])
    assert (args.scenario, args.backends, args.burst, args.resync_period) == (
        "backends",
        10,
        10,
        10.0,
    )
    assert default_out(args) == Path("docs/benchmarks-backends.json")
    assert options(args) == {
        "node": "kwok",
        "workers": 2,
        "resync_s": 10.0,
        "instances": 10,
        "burst": 10,
    }
    assert (parse(["--backends", "3"]).burst, parse(["--backends", "3", "--burst", "7"]).burst) == (
        3,
        7,
    )
    for argv in (
        ["--backends", "0"],
        ["--backends", "3", "--burst", "0"],
        ["--burst", "5"],
        ["--backends", "--scale"],
        ["--backends", "--node", "real"],
    ):
        with pytest.raises(SystemExit):
            parse(argv)


def _results() -> dict[str, Any]:
    machine = {
        **MACHINE,
        "code": {"commit": "abc1234", "uncommitted": []},
        "load_average_at_start": [1.9, 1.0, 0.5],
    }
    options = {"node": "kwok", "workers": 2, "resync_s": 10.0, "instances": 3, "burst": 2}
    return {
        "scenario": "backends",
        "date": "d",
        "command": "python -m bench --backends 3 --burst 2",
        "machine": machine,
        "options": options,
        "load_average_at_end": [2.1, 1.4, 0.9],
        "backends": {"file": FILE, "s3": S3},
        "ratios": backend_ratios(FILE, S3),
    }


def test_the_backends_page() -> None:
    page = render(_results(), "docs/benchmarks-backends.json")
    assert page.startswith("# Benchmarks: the state on file and on S3")
    assert "the raw results are in\ndocs/benchmarks-backends.json." in page
    assert "[1.9, 1.0, 0.5] at the start, [2.1, 1.4, 0.9] at the end." in page
    assert "## The state on file and on S3: 3 objects one at a time, 2 at once" in page
    assert "| one at a time: applied → Ready, p50 | 9.00 s | 11.00 s | **1.22x** |" in page
    assert "| burst: first apply → all Ready | 20.00 s | 30.00 s | **1.50x** |" in page
    assert "### file: `file:///w/state-file`" in page
    assert "### s3: `s3://pulumi-state/bench-x?endpoint=e`" in page
    assert "| **total: applied → Ready seen** | 9.00 | 9.90 | 16.00 | 19.60 |" in page
    assert "| queue wait: applied → first reconcile started | 0.10 | 0.10 | 2.00 | 2.00 |" in page
    assert "| engine runs | n/a | n/a | n/a | n/a |" in page
    assert "**all Ready 12.0 / 16.0 / 20.0 s**" in page
    assert "Load average before one at a time: [1.5, 1.2, 1.0]; before the burst:" in page
    assert "| 0 | 8.0 | 10.0 | 12.0 | 15.0 |" in page
    assert "| 2 | 9.0 | 11.0 | n/a | n/a |" in page


def test_a_failed_backends_run_renders_what_it_measured() -> None:
    results = _results()
    del results["ratios"], results["backends"]["s3"]["burst"]
    results["error"] = "Traceback ...\nTimeoutError: 2 objects\n"
    page = render(results, "x.json")
    assert "TimeoutError: 2 objects" in page
    assert "S3 / file" not in page
    assert "| 1 | 10.0 | 14.0 | 20.0 | n/a |" in page
