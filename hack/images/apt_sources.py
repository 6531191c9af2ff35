"""This machine's apt sources, parsed, and the Debian mirror they name: the Debian
images are built from the same mirror (and updates and security suites) as the host."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import re
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class AptSource:
    """One enabled apt source entry."""

    types: list[str]
    uris: list[str]
    suites: list[str]
    components: list[str]
    signed_by: str | None  # a keyring path, or an inline key (with newlines)


def parse_apt_sources(files: dict[str, str]) -> list[AptSource]:
    """Reads apt source entries from {path: text}, in both the one-line (.list) and the
    deb822 (.sources) formats. Disabled entries are dropped."""
    entries = []
    for path, text in files.items():
        if path.endswith(".sources"):
            entries += _parse_deb822(text)
        elif path.endswith(".list"):
            entries += _parse_one_line(text)
    return entries


def _parse_deb822(text: str) -> list[AptSource]:
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:
                fields[key] += "\n" + line.strip()
                continue
            name, _, value = line.partition(":")
            key = name.strip().lower()
            fields[key] = value.strip()
        if not fields.get("uris") or fields.get("enabled", "yes").lower() == "no":
            continue
        entries.append(
            AptSource(
                types=fields.get("types", "").split(),
                uris=fields["uris"].split(),
                suites=fields.get("suites", "").split(),
                components=fields.get("components", "").split(),
                signed_by=fields.get("signed-by") or None,
            )
        )
    return entries


def _parse_one_line(text: str) -> list[AptSource]:
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        options = {}
        match = re.match(r"^(\S+)\s+\[([^\]]*)\]\s+(.*)$", line)
        if match:
            kind, opts, rest = match.groups()
            for opt in opts.split():
                name, _, value = opt.partition("=")
                options[name] = value
        else:
            kind, _, rest = line.partition(" ")
        words = rest.split()
        if len(words) < 2:
            continue
        entries.append(
            AptSource(
                types=[kind],
                uris=[words[0]],
                suites=[words[1]],
                components=words[2:],
                signed_by=options.get("signed-by") or None,
            )
        )
    return entries


def pick_debian_sources(entries: list[AptSource], suite: str) -> tuple[AptSource, list[AptSource]]:
    """The entry serving `suite` itself (its first URI is debootstrap's mirror), and the
    entries serving its updates and security suites (suite-updates, suite-security,
    suite/updates). Raises LookupError when no entry serves the suite."""
    debs = [e for e in entries if "deb" in e.types]
    main = next((e for e in debs if suite in e.suites), None)
    if main is None:
        raise LookupError(f"no apt source serves the Debian suite {suite!r}")
    extra = []
    for entry in debs:
        suites = [s for s in entry.suites if s.startswith((suite + "-", suite + "/"))]
        if suites:
            extra.append(dataclasses.replace(entry, suites=suites))
    return main, extra


def deb822(entries: list[AptSource]) -> str:
    """Renders source entries as a deb822 .sources file (binary packages, main only)."""
    stanzas = []
    for entry in entries:
        lines = [
            "Types: deb",
            "URIs: " + " ".join(entry.uris),
            "Suites: " + " ".join(entry.suites),
            "Components: main",
        ]
        if entry.signed_by and "\n" not in entry.signed_by:
            lines.append("Signed-By: " + entry.signed_by)
        stanzas.append("\n".join(lines) + "\n")
    return "\n".join(stanzas)


def host_apt_sources() -> list[AptSource]:
    """The apt sources of this machine."""
    paths = ["/etc/apt/sources.list"]
    paths += sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    paths += sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
    files = {}
    for path in paths:
        with contextlib.suppress(OSError):
            files[path] = Path(path).read_text()
    return parse_apt_sources(files)
