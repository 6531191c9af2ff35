"""The reconciler image: the repository's Dockerfile, built by a real Docker engine
(docker_engine) from the python image (Debian's python3, built here too), the project's
wheel, its dependency wheels at the test venv's versions (hack/python-env) and the
toolchain's pulumi binaries and provider plugin (hack/toolchain/build); then `docker
save`d."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from pathlib import Path

from images import cache
from images.cache import REPO_ROOT
from images.debian_rootfs import DebianImage, build_debian_image, require_commands
from images.docker_archive import PATH_ENV, archive_refs
from images.docker_engine import Engine, docker_engine
from images.process import log, run, step

PYTHON_PACKAGES = ["python3", "python3-venv", "ca-certificates"]
PYTHON_REPO = "localhost/mysql-operator/python"
RECONCILER_REPO = "localhost/mysql-operator/reconciler"
# What goes into the mysql-operator wheel (pyproject's packages).
PROJECT_PACKAGES = ["reconciler", "infra"]
PULUMI_BINARIES = ["pulumi", "pulumi-language-python", "pulumi-language-python-exec"]


def finish_python_rootfs(rootfs: Path) -> None:
    """A venv with pip must work: the reconciler's Dockerfile installs into one."""
    require_commands(rootfs, "python", ["python3"])
    run(["chroot", str(rootfs), "python3", "-c", "import ensurepip, venv, ssl, sqlite3"])


# The reconciler image's base: Debian's own Python, with venv and CA certificates.
PYTHON = DebianImage(
    name="python",
    packages=PYTHON_PACKAGES,
    versioned_package="python3",
    repo=PYTHON_REPO,
    finish=finish_python_rootfs,
    config={"Cmd": ["python3"], "Env": [PATH_ENV, "LANG=C.UTF-8"], "WorkingDir": "/"},
)


def project_metadata() -> dict[str, object]:
    """pyproject.toml's [project] table."""
    import tomllib  # here, so that the other images build on a Python without it

    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        project: dict[str, object] = tomllib.load(f)["project"]
    return project


def project_version() -> str:
    return str(project_metadata()["version"])


def runtime_requirements() -> list[str]:
    dependencies = project_metadata()["dependencies"]
    assert isinstance(dependencies, list)
    return [str(requirement) for requirement in dependencies]


def helper_output(argv: list[str]) -> str:
    """The last line a hack/ helper prints on stdout (its progress goes to stderr)."""
    lines = run(argv, capture=True).strip().splitlines()
    if not lines:
        raise SystemExit(f"{' '.join(argv)} printed nothing")
    return lines[-1]


def provider_plugin() -> Path:
    """The pulumi-resource-kubernetes that hack/toolchain/build installed as a plugin."""
    release = next(
        line.split("=", 1)[1].strip()
        for line in (REPO_ROOT / "hack/toolchain/versions.env").read_text().splitlines()
        if line.startswith("KUBERNETES_PROVIDER_RELEASE=")
    )
    home = Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")
    plugin = home / "plugins" / f"resource-kubernetes-v{release}" / "pulumi-resource-kubernetes"
    if not plugin.is_file():
        raise SystemExit(f"{plugin} is missing: run hack/toolchain/build")
    return plugin


def project_sources() -> list[Path]:
    """What the mysql-operator wheel is built from."""
    files = [REPO_ROOT / "pyproject.toml", REPO_ROOT / "README.md"]
    for package in PROJECT_PACKAGES:
        files += sorted(
            path
            for path in (REPO_ROOT / package).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        )
    return files


def pip_freeze(venv: Path) -> str:
    return run([str(venv / "bin/pip"), "freeze", "--disable-pip-version-check"], capture=True)


def dependency_wheels(venv: Path) -> Path:
    """The runtime dependencies as wheels, at the versions installed in the test venv."""
    frozen = pip_freeze(venv)
    requirements = runtime_requirements()
    key = cache.input_key([], [*requirements, frozen, platform.machine()])
    wheels = cache.images_dir / f"wheels-{key}"
    if (wheels / ".complete").exists():
        return wheels
    shutil.rmtree(wheels, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=".wheels-", dir=cache.images_dir))
    try:
        (work / "constraints.txt").write_text(frozen)
        (work / "requirements.txt").write_text("\n".join(requirements) + "\n")
        with step("reconciler: pip download (dependency wheels)"):
            run(
                [
                    str(venv / "bin/pip"),
                    "download",
                    "--disable-pip-version-check",
                    "--quiet",
                    "--only-binary=:all:",
                    f"--dest={work / 'wheels'}",
                    f"--constraint={work / 'constraints.txt'}",
                    f"--requirement={work / 'requirements.txt'}",
                ]
            )
        (work / "wheels" / ".complete").touch()
        os.rename(work / "wheels", wheels)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for old in cache.images_dir.glob("wheels-*"):
        if old != wheels:
            shutil.rmtree(old, ignore_errors=True)
    return wheels


def reconciler_context(context: Path, venv: Path, toolchain_bin: Path) -> None:
    """Dockerfile, wheels/ and pulumi/, as the Dockerfile expects them."""
    context.mkdir()
    shutil.copyfile(REPO_ROOT / "Dockerfile", context / "Dockerfile")
    wheels = context / "wheels"
    shutil.copytree(dependency_wheels(venv), wheels)
    (wheels / ".complete").unlink()
    # The project's wheel, built from a copy so that no build files land in the repo.
    source = context.parent / "source"
    source.mkdir()
    for path in project_sources():
        target = source / path.relative_to(REPO_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    with step("reconciler: pip wheel (the project)"):
        run(
            [
                str(venv / "bin/pip"),
                "wheel",
                "--disable-pip-version-check",
                "--quiet",
                "--no-deps",
                f"--wheel-dir={wheels}",
                str(source),
            ]
        )
    pulumi = context / "pulumi"
    pulumi.mkdir()
    for name in PULUMI_BINARIES:
        shutil.copyfile((toolchain_bin / name).resolve(), pulumi / name)
    shutil.copyfile(provider_plugin(), pulumi / "pulumi-resource-kubernetes")
    # The plugin cache is private to its owner; in the image any uid runs them.
    for binary in pulumi.iterdir():
        binary.chmod(0o755)


def build_reconciler(rebuild: bool) -> Path:
    base_tar = build_debian_image(PYTHON, rebuild=False)
    base_ref = archive_refs(base_tar)[1]  # the python3 major.minor tag
    toolchain_bin = Path(helper_output([str(REPO_ROOT / "hack/toolchain/build"), "--print-bin"]))
    venv = Path(helper_output([str(REPO_ROOT / "hack/python-env")]))
    plugin = provider_plugin()
    frozen = pip_freeze(venv)
    version = project_version()
    key = cache.input_key(
        [*cache.own_sources(), REPO_ROOT / "Dockerfile", *project_sources()],
        [
            base_tar.name,
            toolchain_bin.name,
            f"{plugin.stat().st_size}:{plugin.stat().st_mtime_ns}",
            frozen,
            platform.machine(),
        ],
    )
    refs = [f"{RECONCILER_REPO}:{version}-{key[:12]}", f"{RECONCILER_REPO}:{version}"]
    with cache.cache_slot("reconciler", key) as (final, work):
        if final.exists() and not rebuild:
            log(f"reconciler: cached {final}")
            return final
        with step("reconciler: build context"):
            reconciler_context(work / "context", venv, toolchain_bin)
        with docker_engine(cache.cache_root) as engine:
            present = engine.docker("images", "--quiet", base_ref, capture=True).strip()
            if not present:
                with step(f"reconciler: docker load {base_ref}"):
                    engine.docker("load", "--input", str(base_tar))
            with step("reconciler: docker build"):
                tags = [arg for ref in refs for arg in ("--tag", ref)]
                engine.docker(
                    "build",
                    "--build-arg",
                    f"BASE_IMAGE={base_ref}",
                    "--build-arg",
                    f"VERSION={version}",
                    *tags,
                    str(work / "context"),
                )
            with step("reconciler: docker save"):
                engine.docker("save", "--output", str(work / "image.tar"), *refs)
            if engine.private:
                prune_private_engine(engine, keep=refs)
        os.rename(work / "image.tar", final)
        cache.prune_old("reconciler", final)
        return final


def prune_private_engine(engine: Engine, keep: list[str]) -> None:
    """Older reconciler images and dangling layers, so the engine's data root stays small."""
    listed = engine.docker(
        "images", "--format", "{{.Repository}}:{{.Tag}}", RECONCILER_REPO, capture=True
    ).split()
    stale = [ref for ref in listed if ref not in keep]
    if stale:
        engine.docker("rmi", *stale, capture=True)
    engine.docker("image", "prune", "--force", capture=True)
