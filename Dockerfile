# The reconciler image: the operator's Python package in a venv, with the pinned Pulumi
# CLI and pulumi-resource-kubernetes plugin beside it.
#
# `hack/images/build reconciler` assembles the build context and runs this file:
#   wheels/   the mysql-operator wheel and every dependency wheel, at the versions the
#             tests ran with (no index is reached during the build);
#   pulumi/   pulumi, pulumi-language-python(-exec) and pulumi-resource-kubernetes, as
#             hack/toolchain/build made them from their Go modules.
# BASE_IMAGE must be a Debian-like image whose python3 can make a venv (3.11 or newer).
# The default is the upstream slim image; our machines pass the locally built
# localhost/mysql-operator/python instead, since no registry can be pulled from here.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS venv
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/mysql-operator \
 && /opt/mysql-operator/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \
      --find-links /tmp/wheels mysql-operator \
 && /opt/mysql-operator/bin/pip uninstall --yes --disable-pip-version-check pip setuptools \
 && /opt/mysql-operator/bin/mysql-operator-reconciler --help > /dev/null

FROM ${BASE_IMAGE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="mysql-operator reconciler" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=venv /opt/mysql-operator /opt/mysql-operator
# On PATH: the engine finds the provider there, so PULUMI_HOME can be an empty,
# writable volume under a read-only root filesystem.
COPY pulumi/ /opt/pulumi/bin/
ENV PATH=/opt/mysql-operator/bin:/opt/pulumi/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PULUMI_HOME=/var/run/pulumi \
    PULUMI_SKIP_UPDATE_CHECK=true \
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# The CLI is built without cgo, so it finds its user in /etc/passwd (or $USER) only.
# PULUMI_HOME is writable by the reconciler even without a volume (e.g. `docker run`).
RUN (getent passwd 65532 > /dev/null \
      || echo 'nonroot:x:65532:65532:mysql-operator:/tmp:/usr/sbin/nologin' >> /etc/passwd) \
 && (getent group 65532 > /dev/null || echo 'nonroot:x:65532:' >> /etc/group) \
 && install -d -o 65532 -g 65532 /var/run/pulumi
# The conventional "nonroot" uid; infra/ runs the pod as it too.
USER 65532:65532
# As that user: the engine and the plugin it will look up on PATH.
RUN test -x /opt/pulumi/bin/pulumi-resource-kubernetes \
 && PULUMI_HOME=/tmp/pulumi-check pulumi version && rm -rf /tmp/pulumi-check
ENTRYPOINT ["mysql-operator-reconciler"]
CMD ["run"]
