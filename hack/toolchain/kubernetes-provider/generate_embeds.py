#!/usr/bin/env python3
"""Make the two files that pulumi-resource-kubernetes' main.go embeds.

Upstream makes them with `go generate` (cmd/pulumi-resource-kubernetes/generate.go)
and does not publish them in the module zip. This does the same: it stamps the release
into schema.json as schema-embed.json and minifies terraform-mapping.json.

usage: generate_embeds.py <dir of cmd/pulumi-resource-kubernetes> <release, e.g. 4.25.0>
"""

import json
import sys
from pathlib import Path


def main() -> None:
    command_dir, release = Path(sys.argv[1]), sys.argv[2]
    schema = json.loads((command_dir / "schema.json").read_text(encoding="utf-8"))
    schema["version"] = release
    (command_dir / "schema-embed.json").write_text(
        json.dumps(schema, separators=(",", ":")), encoding="utf-8"
    )
    mapping = json.loads((command_dir / "terraform-mapping.json").read_text(encoding="utf-8"))
    (command_dir / "terraform-mapping-embed.json").write_text(
        json.dumps(mapping, separators=(",", ":")), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
