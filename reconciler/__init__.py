"""The MySQL operator's reconciler.

One MySQL object becomes one Pulumi stack. A reader can follow an object through:

- `spec`: parses and validates the object into a frozen `Instance` (errors name the field);
- `names`, `program`: derive names and declare the stack's resources from it (pure);
- `fingerprint`: hashes what the program would render, for the synced check;
- `conditions`, `status`: the Ready/Reconciling/Stalled conditions and the status model;
- `reconcile`: the pure decision, from the object, its status and a few observations;
- `executor`: carries one decision out and reports it (status, Events, logs, metrics);
- `driver`: the only module that calls Pulumi's Automation API;
- `kube`: the only module that calls the Kubernetes API;
- `queue`, `watch`: the level-triggered list/watch loop and the work queue that feed it;
- `settings`, `runner`, `http`, `metrics`, `cli`: the `reconciler run|preview` process.

tests/unit/test_layering.py keeps the two effect modules exclusive.
"""
