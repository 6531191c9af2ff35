"""Benchmarks: what a MySQL object costs through the Pulumi reconciler (issue 7).

- `run`, `burst`, `restart`: the three scenarios (one at a time, K at once, a restart);
- `cluster`, `objects`, `processes`: the bench's own cluster, its MySQL objects, the
  processes under test and their memory;
- `render`: the Kubernetes objects the stack program declares, via Pulumi's mocks;
- `baseline`: a minimal direct-apply reconciler (server-side apply of those objects);
- `procfs`: CPU time and RSS of a process tree, from /proc;
- `stats`: percentiles, the reconciler's logfmt lines, burst and restart summaries;
- `targets`: the issue's targets;
- `machine`: what the numbers were measured on;
- `report`, `report_scale`, `markdown`: the Markdown pages;
- `__main__`: the command, `python -m bench`.
"""
