"""Settings: defaults are safe, flags beat the environment, bad values name the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import settings as settings_module
from reconciler.leases import DEFAULT_LEASE_NAME
from reconciler.settings import (
    DEFAULT_PASSPHRASE_ENV,
    DEFAULT_STUCK_AFTER_S,
    LogLevel,
    SecretReference,
    SettingsError,
    load_settings,
    parse_settings,
)

pytestmark = pytest.mark.unit

HOME = {"HOME": "/home/op"}


def test_defaults() -> None:
    settings = parse_settings([], HOME)
    assert settings.namespaces == ()
    assert settings.watches_all_namespaces
    assert settings.workers == 2
    assert settings.state_dir == Path("/home/op/.cache/mysql-operator/state")
    assert settings.backend_url == "file:///home/op/.cache/mysql-operator/state"
    assert settings.passphrase.env_var == DEFAULT_PASSPHRASE_ENV
    assert settings.passphrase.secret is None
    assert settings.resync_period_s == 300
    assert (settings.http_address.host, settings.http_address.port) == ("127.0.0.1", 8080)
    assert settings.kubeconfig is None
    assert settings.log_level is LogLevel.INFO
    assert settings.label_selector == ""
    assert settings.stuck_after_s == DEFAULT_STUCK_AFTER_S == 900


def test_environment_then_flags() -> None:
    env = {
        **HOME,
        "MYSQL_OPERATOR_NAMESPACES": "a, b,a",
        "MYSQL_OPERATOR_WORKERS": "3",
        "MYSQL_OPERATOR_STATE_DIR": "/srv/state",
        "MYSQL_OPERATOR_RESYNC_PERIOD": "30",
        "MYSQL_OPERATOR_LOG_LEVEL": "debug",
        "MYSQL_OPERATOR_PASSPHRASE_SECRET": "ops/pulumi",
    }
    from_env = parse_settings([], env)
    assert from_env.namespaces == ("a", "b")
    assert from_env.workers == 3
    assert from_env.backend_url == "file:///srv/state"
    assert from_env.resync_period_s == 30
    assert from_env.log_level is LogLevel.DEBUG
    assert from_env.passphrase.secret == SecretReference("ops", "pulumi", "passphrase")

    flags = parse_settings(
        [
            "--namespace=c",
            "--workers=5",
            "--backend-url=s3://bucket/prefix",
            "--http-address=0.0.0.0:9000",
            "--passphrase-secret=ops/pulumi/key",
        ],
        env,
    )
    assert flags.namespaces == ("c",)
    assert flags.workers == 5
    assert flags.backend_url == "s3://bucket/prefix"
    assert flags.state_dir == Path("/srv/state")
    assert str(flags.http_address) == "0.0.0.0:9000"
    assert flags.passphrase.secret == SecretReference("ops", "pulumi", "key")


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--workers=0"], "--workers"),
        (["--workers=many"], "--workers"),
        (["--workers=1000"], "--workers"),
        (["--resync-period=-1"], "--resync-period"),
        (["--http-address=nowhere"], "--http-address"),
        (["--backend-url=/just/a/path"], "--backend-url"),
        (["--passphrase-secret=only-a-name"], "--passphrase-secret"),
        (["--stuck-after=0"], "--stuck-after"),
        (["--stuck-after=-5"], "--stuck-after"),
        (["--stuck-after=soon"], "--stuck-after"),
    ],
)
def test_bad_values_name_the_flag(argv: list[str], flag: str) -> None:
    with pytest.raises(SettingsError, match=flag):
        parse_settings(argv, HOME)


def test_settings_never_hold_the_passphrase() -> None:
    settings = parse_settings([], {**HOME, DEFAULT_PASSPHRASE_ENV: "hunter2-very-secret"})
    assert "hunter2-very-secret" not in repr(settings)


def test_a_label_selector_from_the_environment_or_a_flag() -> None:
    env = {**HOME, "MYSQL_OPERATOR_LABEL_SELECTOR": " shard=a "}
    assert parse_settings([], env).label_selector == "shard=a"
    flagged = parse_settings(["--label-selector=shard in (b,c),tier!=test"], env)
    assert flagged.label_selector == "shard in (b,c),tier!=test"


def test_stuck_after_from_the_environment_or_a_flag() -> None:
    env = {**HOME, "MYSQL_OPERATOR_STUCK_AFTER": "1200"}
    assert parse_settings([], env).stuck_after_s == 1200
    assert parse_settings(["--stuck-after=60.5"], env).stuck_after_s == 60.5


def test_a_bad_stuck_after_in_the_environment_names_the_flag() -> None:
    with pytest.raises(SettingsError, match="--stuck-after"):
        parse_settings([], {**HOME, "MYSQL_OPERATOR_STUCK_AFTER": "0"})


def test_the_label_selector_is_parsed_once() -> None:
    settings = parse_settings(["--label-selector=shard in (a,b)"], HOME)
    assert settings.selector.matches({"shard": "b"})
    assert not settings.selector.matches({"shard": "c"})
    assert parse_settings([], HOME).selector.matches({"anything": "x"})


def test_a_bad_label_selector_names_the_flag() -> None:
    with pytest.raises(SettingsError, match="--label-selector"):
        parse_settings(["--label-selector=shard in a,b"], HOME)


def test_no_host_path_is_allowed_unless_a_root_is_given() -> None:
    assert parse_settings([], HOME).host_path_root is None
    assert parse_settings(["--host-path-root=/srv/mysql/"], HOME).host_path_root == "/srv/mysql"
    env = {**HOME, "MYSQL_OPERATOR_HOST_PATH_ROOT": "/data"}
    assert parse_settings([], env).host_path_root == "/data"


@pytest.mark.parametrize("root", ["relative", "/", "/srv/../etc"])
def test_a_host_path_root_must_be_an_absolute_directory_other_than_slash(root: str) -> None:
    with pytest.raises(SettingsError, match="--host-path-root"):
        parse_settings([f"--host-path-root={root}"], HOME)


def test_the_transfer_image_comes_from_the_environment_or_a_flag() -> None:
    assert parse_settings([], HOME).transfer_image is None
    env = {**HOME, "MYSQL_OPERATOR_TRANSFER_IMAGE": "registry/op:1"}
    assert parse_settings([], env).transfer_image == "registry/op:1"
    assert parse_settings(["--transfer-image=op:2"], env).transfer_image == "op:2"
    with pytest.raises(SettingsError, match="--transfer-image"):
        parse_settings(["--transfer-image=op 2"], HOME)


def test_no_leader_election_unless_asked() -> None:
    assert parse_settings([], HOME).leader_election is None
    env = {**HOME, "MYSQL_OPERATOR_LEADER_ELECT": "false"}
    assert parse_settings([], env).leader_election is None


def test_leader_election_in_a_pod() -> None:
    env = {
        **HOME,
        "MYSQL_OPERATOR_LEADER_ELECT": "true",
        "POD_NAME": "mysql-operator-5d9c-abcde",
        "POD_NAMESPACE": "ops",
    }
    first, second = parse_settings([], env).leader_election, parse_settings([], env).leader_election
    assert first is not None
    assert second is not None
    assert (first.namespace, first.lease_name) == ("ops", DEFAULT_LEASE_NAME)
    assert first.identity.startswith("mysql-operator-5d9c-abcde_")
    # A restarted container keeps its pod's name, never its identity.
    assert first.identity != second.identity


def test_leader_election_flags_beat_the_environment() -> None:
    from reconciler.cli import build_parser

    env = {**HOME, "POD_NAMESPACE": "ops"}
    args = build_parser().parse_args(
        ["run", "--leader-elect", "--leader-election-namespace=ctl", "--leader-election-name=l1"]
    )
    election = load_settings(args, env).leader_election
    assert election is not None
    assert (election.namespace, election.lease_name) == ("ctl", "l1")


@pytest.mark.parametrize(
    ("env", "flag"),
    [
        ({"MYSQL_OPERATOR_LEADER_ELECT": "yes"}, "--leader-elect"),
        ({"MYSQL_OPERATOR_LEADER_ELECT": "true"}, "--leader-election-namespace"),
        (
            {"MYSQL_OPERATOR_LEADER_ELECT": "true", "POD_NAMESPACE": "Not_A_Name"},
            "--leader-election-namespace",
        ),
        (
            {
                "MYSQL_OPERATOR_LEADER_ELECT": "true",
                "POD_NAMESPACE": "ops",
                "MYSQL_OPERATOR_LEADER_ELECTION_NAME": "a/b",
            },
            "--leader-election-name",
        ),
    ],
)
def test_bad_leader_election_settings_name_the_flag(
    env: dict[str, str], flag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not in a pod: no service account namespace file to fall back on.
    monkeypatch.setattr(settings_module, "SERVICE_ACCOUNT_NAMESPACE", Path("/nonexistent/ns"))
    with pytest.raises(SettingsError, match=f"^{flag}:"):
        parse_settings([], {**HOME, **env})
