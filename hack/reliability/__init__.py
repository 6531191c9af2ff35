"""`hack/reliability`: the data promise under load, crashes and faults, on the real node.

Not a test: it runs for an hour or more and writes its figures to docs/reliability.md.
"""
