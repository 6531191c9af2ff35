"""Benchmarks: what a MySQL object costs through the Pulumi reconciler (issue 7).

- `run`, `burst`, `restart`: the scale scenarios (one at a time, K at once, a restart);
- `backup_restore`: backup and restore on the real node against `mysqldump | mysql`, with
  `dataset` (the generated data, its scripts and parsers), `jobs` (Job times) and
  `mysql_pod` (commands in the MySQL pod);
- `cluster`, `objects`, `processes`: the bench's own cluster, its MySQL objects, the
  processes under test and their memory;
- `render`: the Kubernetes objects the stack program declares, via Pulumi's mocks;
- `baseline`: a minimal direct-apply reconciler (server-side apply of those objects);
- `procfs`: CPU time and RSS of a process tree, from /proc;
- `stats`: percentiles, the reconciler's logfmt lines, burst and restart summaries;
- `targets`: the issue's targets;
- `machine`: what the numbers were measured on;
- `report`, `report_scale`, `report_backup`, `markdown`: the Markdown pages;
- `__main__`: the command, `python -m bench`.
"""
