"""Builds the local cluster's container images without a registry (hack/images/build).

    hack/images/build                  build what is missing; print the image tars
    hack/images/build --print          the same, said explicitly
    hack/images/build --refs           build what is missing; print the image references
    hack/images/build --import SOCK    build what is missing, then import the images into
                                       the k8s.io namespace of the containerd on SOCK
    hack/images/build [...] pause      only the named images (default: pause and mariadb,
                                       the local cluster's; python and reconciler on request)
    hack/images/build --rebuild [...]  ignore the cache

Images:
  pause    a static Go binary (pause/main.go) that holds a pod's namespaces, reaps
           zombies and exits on SIGTERM/SIGINT. Tag: PAUSE_REF.
  mariadb  Debian's mariadb-server and mariadb-client on a debootstrap minbase rootfs,
           with an entrypoint (mariadb/docker-entrypoint.sh) that honours the official
           mysql image's interface, its user mysql renumbered to uid and gid 999 as in
           the official image, so that it also runs as `runAsUser: 999` with no
           capabilities. Tags: localhost/mysql-operator/mariadb:<Debian version> (e.g.
           10.11.19-0-deb12u1) and :<major.minor> (e.g. 10.11), plus MARIADB_ALIAS_REFS
           so that `image: mysql:5.7` runs unchanged.
  python   Debian's python3, python3-venv and ca-certificates on the same kind of rootfs:
           the reconciler image's local base. Tags: localhost/mysql-operator/python:<Debian
           version> and :<major.minor>.
  reconciler
           the repository's Dockerfile, built by a real Docker engine (docker_engine.py:
           the machine's, or a private dockerd from Debian's docker.io) from the python
           image, the project's wheel, its dependency wheels at the test venv's versions
           (hack/python-env) and the toolchain's pulumi binaries and provider plugin
           (hack/toolchain/build); then `docker save`d. Tags:
           localhost/mysql-operator/reconciler:<version>-<key> and :<version>.

Each image is a docker-archive tar (manifest.json, config, one layer), which both
`ctr images import` and `docker load` accept. The tars are cached under
$MYSQL_OPERATOR_CACHE/images (default ~/.cache/mysql-operator/images) as
<name>-<key>.tar, the key hashing the build inputs (this package's sources and its
launcher, the image's sources, the Debian suite and packages, the Go version), so an
unchanged image is never rebuilt. Builds go to a temporary directory and are renamed into
place at the end, so a killed build leaves no half tar behind. Progress and per-step
timings go to stderr; stdout carries only the paths (or references) asked for.

The mariadb and python builds need root (debootstrap, chroot, mount) and take their
Debian mirror from this machine's apt configuration. Standard library only: this runs
before any venv.

Modules, by job:
  process            logging, timed steps, running commands in their own process group
  cache              where the cache lives, the input keys, one lock and temp dir per image
  docker_archive     one-layer docker-archive tars: writing them, reading their tags
  apt_sources        this machine's apt sources, parsed; the Debian mirror they name
  debian_rootfs      debootstrap + apt-get images (mariadb, python): the generic builder
  mariadb_image      the mariadb image: packages, entrypoint, uid/gid 999
  pause_image        the pause image
  reconciler_image   the python base image and the reconciler image (docker build)
  docker_engine      the Docker engine that builds the reconciler image
  containerd_import  `ctr images import` into a containerd's k8s.io namespace
  cli                the command line
"""
