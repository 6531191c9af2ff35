"""The MySQL operator's reconciler.

One MySQL object becomes one Pulumi stack. The pure stages live here:
`spec` parses and validates the object into a frozen `Instance`, `names` derives resource
names and labels from it, `program` declares the stack's resources from it, and
`fingerprint` hashes what the program would render so that the reconcile step can skip
an engine run when nothing changed. None of these modules talks to Kubernetes or Pulumi's
engine.
"""
