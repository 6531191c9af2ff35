"""bench's pure helpers: percentiles, logfmt lines, /proc parsing. No timings asserted."""

from __future__ import annotations

import pytest

from bench.machine import cpu_model, mem_total_kib
from bench.procfs import parse_stat, parse_vm_rss_kib
from bench.stats import parse_logfmt, percentile, reconciled_lines

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


def test_proc_stat_with_spaces_and_parens_in_the_name() -> None:
    rest = " ".join(["S", "7", *["0"] * 9, "10", "20", "3", "4", *["0"] * 30])
    stat = parse_stat(f"42 (a (weird) name) {rest}")
    assert (stat.pid, stat.ppid, stat.cpu_ticks) == (42, 7, 37)


def test_vm_rss_and_machine_fields() -> None:
    assert parse_vm_rss_kib("Name:\tpython\nVmRSS:\t  111540 kB\n") == 111540
    assert parse_vm_rss_kib("Name:\tkthreadd\n") == 0
    assert cpu_model("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n") == "Some CPU @ 2.0GHz"
    assert mem_total_kib("MemTotal:        8000000 kB\n") == 8000000
