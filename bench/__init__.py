"""Benchmarks: what a MySQL object costs through the Pulumi reconciler (issue 7).

- `render`: the Kubernetes objects the stack program declares, via Pulumi's mocks;
- `baseline`: a minimal direct-apply reconciler (server-side apply of those objects);
- `procfs`: CPU time and RSS of a process tree, from /proc;
- `stats`: percentiles and the reconciler's logfmt lines;
- `machine`: what the numbers were measured on;
- `report`: the Markdown table;
- `run`, `__main__`: the one command, `python -m bench`.
"""
