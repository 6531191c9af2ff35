"""The operator's installation: the Pulumi program that `pulumi up` runs from Pulumi.yaml.

- `config`: the stack configuration, read once into a frozen, validated object;
- `rbac`: the ClusterRole's rules, a reviewed constant (tests/unit/test_infra_rbac.py
  checks them against what the reconciler and its stack program really call);
- `resources`: pure builders of names, labels and object specs;
- `install`: declares the resources (the only module that creates any);
- `__main__`: the entry point the language host runs.
"""
