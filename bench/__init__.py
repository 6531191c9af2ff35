"""Benchmarks: what a MySQL object costs through the Pulumi reconciler (bench/README.md).

- `__main__`: the command, `python -m bench`; `scenarios`: one at a time, broken mix, scale;
- `cluster`: the bench's own cluster, its ports and extra kwok nodes;
- `runner`: MySQL objects, the reconciler process, CPU and RSS from /proc, the machine;
- `baseline`: the same manifests applied directly, the lower bound;
- `stats`: the pure helpers (percentiles, log lines, parsers, targets);
- `report`: the Markdown pages.
"""
