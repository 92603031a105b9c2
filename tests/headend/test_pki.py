"""TLS inside the platform: the private CA (certificates that fit together, private keys,
reuse across runs), TLS settings on both sides, channels that dial over (m)TLS, and how
``headend up --tls`` hands the files to its children. The refusals are in
``tests/security/test_grpc.py``."""

from __future__ import annotations

import ipaddress
import stat
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from headend import clitools, pki
from headend.auth import KeyStore
from headend.keys_service import key_service
from headend.local import local_children
from headend.local_secrets import LocalSecrets, tls_client_env
from headend.rpc import ClientTls, RpcSettings, StartupError, bearer, client_channel, start_server
from headend.settings import SettingsError
from headend.stack import StackSettings
from protos import keys_pb2, keys_pb2_grpc


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(cert: x509.Certificate) -> set[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n) for n in names.get_values_for_type(x509.DNSName)} | {
        str(n) for n in names.get_values_for_type(x509.IPAddress)
    }


def _usage(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_local_pki_makes_a_ca_and_leaves_that_fit(tmp_path: Path) -> None:
    made = pki.local_pki(tmp_path / "pki", hosts=["10.1.2.3", "epg.internal"])
    ca = _cert(made.ca_file)
    server, client = _cert(made.server.cert_file), _cert(made.client.cert_file)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    server.verify_directly_issued_by(ca)
    client.verify_directly_issued_by(ca)
    assert _sans(server) == {"127.0.0.1", "::1", "localhost", "10.1.2.3", "epg.internal"}
    assert _usage(server) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert _usage(client) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ipaddress.ip_address("::1") in server.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.IPAddress)


def test_keys_are_private(tmp_path: Path) -> None:
    made = pki.local_pki(tmp_path / "pki")
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700
    for pair in (made.ca, made.server, made.client):
        assert stat.S_IMODE(pair.key_file.stat().st_mode) == 0o600
    assert not list((tmp_path / "pki").glob(".*partial"))


def test_a_second_run_reuses_everything_that_still_fits(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    first = pki.local_pki(folder, hosts=["epg.internal"])
    before = {p: p.read_bytes() for p in folder.iterdir()}
    second = pki.local_pki(folder, hosts=["epg.internal"])
    assert second == first
    assert {p: p.read_bytes() for p in folder.iterdir()} == before


def test_a_new_host_reissues_the_server_certificate_under_the_same_ca(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    first = pki.local_pki(folder)
    ca_bytes, client_bytes = first.ca_file.read_bytes(), first.client.cert_file.read_bytes()
    again = pki.local_pki(folder, hosts=["10.9.8.7"])
    assert "10.9.8.7" in _sans(_cert(again.server.cert_file))
    assert again.ca_file.read_bytes() == ca_bytes
    assert again.client.cert_file.read_bytes() == client_bytes


def test_a_leaf_near_expiry_or_from_another_ca_is_reissued(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    made = pki.local_pki(folder)
    pki.issue_client(made.ca, folder, days=1)  # inside the renewal window
    other = pki.make_ca(tmp_path / "other")
    pki.issue_server(other, folder)  # signed by a stranger
    again = pki.local_pki(folder)
    ca = _cert(again.ca_file)
    _cert(again.server.cert_file).verify_directly_issued_by(ca)
    client = _cert(again.client.cert_file)
    client.verify_directly_issued_by(ca)
    assert client.not_valid_after_utc - client.not_valid_before_utc > pki.RENEW_BEFORE


def test_an_unreadable_ca_is_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    pki.local_pki(folder)
    (folder / "ca.key").write_text("not a key")
    with pytest.raises(pki.PkiError, match=r"ca\.key"):
        pki.local_pki(folder)


def test_the_files_work_as_server_and_client_settings(tmp_path: Path) -> None:
    made = pki.local_pki(tmp_path / "pki")
    env = {
        "TLS_CERT_FILE": str(made.server.cert_file),
        "TLS_KEY_FILE": str(made.server.key_file),
        "TLS_CLIENT_CA_FILE": str(made.ca_file),
        **tls_client_env(made),
    }
    server = RpcSettings.from_env(env, "EPG", default_port=50051)
    assert server.tls_client_ca_file == made.ca_file
    client = ClientTls.from_env(env)
    assert client is not None
    assert client.mutual


_GRPC_SERVERS = {"epg", "subscriber", "transcode", "cdn"}


def test_up_with_tls_gives_servers_their_pair_and_every_child_the_client_pair(
    tmp_path: Path,
) -> None:
    settings = StackSettings.from_env({"HEADEND_VAR_DIR": str(tmp_path / "var")})
    made = pki.local_pki(settings.var_dir / "pki", hosts=[settings.host])
    keys = LocalSecrets("k1:x", "s1:y", "hk_token", "hk_playback")
    children = local_children(settings, keys, tls=made)
    assert _GRPC_SERVERS <= {c.name for c in children}
    for child in children:
        assert {k: child.env[k] for k in tls_client_env(made)} == tls_client_env(made)
        if child.name in _GRPC_SERVERS:
            assert child.env["TLS_CERT_FILE"] == str(made.server.cert_file)
            assert child.env["TLS_KEY_FILE"] == str(made.server.key_file)
            assert child.env["TLS_CLIENT_CA_FILE"] == str(made.ca_file)
        else:
            assert "TLS_CERT_FILE" not in child.env
    plain = local_children(settings, keys)
    for child in plain:
        assert not any(k.startswith(("TLS_", "GRPC_CLIENT_")) for k in child.env)


def test_check_pair_refuses_a_key_of_another_certificate(tmp_path: Path) -> None:
    made = pki.local_pki(tmp_path / "pki")
    pki.check_pair(made.server.cert_file, made.server.key_file)
    with pytest.raises(pki.PemError) as caught:
        pki.check_pair(made.server.cert_file, made.client.key_file)
    assert caught.value.path == made.client.key_file
    with pytest.raises(pki.PemError, match="no PEM certificate"):
        pki.check_certificates(made.server.key_file)


# TLS settings and channels


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> pki.LocalPki:
    return pki.local_pki(tmp_path_factory.mktemp("pki"), hosts=["epg.internal"])


async def test_tls_and_mtls_round_trip(keys: KeyStore, tokens, certs: pki.LocalPki) -> None:
    tls = RpcSettings(tls_cert_file=certs.server.cert_file, tls_key_file=certs.server.key_file)
    trusting = ClientTls(ca_file=certs.ca_file)
    mutual = replace(trusting, cert_file=certs.client.cert_file, key_file=certs.client.key_file)
    admin = bearer(await tokens())
    for settings, client in (
        (tls, trusting),
        (replace(tls, tls_client_ca_file=certs.ca_file), mutual),
    ):
        server, port = await start_server(
            settings, services=[key_service(keys)], authenticator=keys
        )
        try:
            async with client_channel(f"127.0.0.1:{port}", tls=client) as channel:
                who = await keys_pb2_grpc.KeyServiceStub(channel).WhoAmI(
                    keys_pb2.WhoAmIRequest(), metadata=admin, timeout=10
                )
                assert who.principal == "admin"
        finally:
            await server.stop(0)


@pytest.mark.parametrize(
    ("server_name", "works"),
    [
        pytest.param(None, True, id="target-address"),
        pytest.param("epg.internal", True, id="override-in-certificate"),
        pytest.param("other.internal", False, id="override-not-in-certificate"),
    ],
)
async def test_server_name_override_is_what_the_certificate_is_checked_against(
    keys: KeyStore, certs: pki.LocalPki, server_name: str | None, works: bool
) -> None:
    settings = RpcSettings(tls_cert_file=certs.server.cert_file, tls_key_file=certs.server.key_file)
    server, port = await start_server(settings, services=[key_service(keys)], authenticator=keys)
    tls = ClientTls(ca_file=certs.ca_file, server_name=server_name)
    try:
        async with client_channel(f"127.0.0.1:{port}", tls=tls) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            if works:
                assert (await check).status == health_pb2.HealthCheckResponse.SERVING
            else:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await check
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


@pytest.mark.parametrize(
    ("files", "field"),
    [
        pytest.param({"TLS_CERT_FILE": "server.pem"}, "TLS_KEY_FILE", id="cert-without-key"),
        pytest.param(
            {"TLS_CERT_FILE": "server.pem", "TLS_KEY_FILE": "client.key"}, "TLS_KEY_FILE",
            id="key-of-another-certificate",
        ),
        pytest.param(
            {"TLS_CERT_FILE": "server.key", "TLS_KEY_FILE": "server.key"}, "TLS_CERT_FILE",
            id="cert-is-a-key",
        ),
        pytest.param(
            {"TLS_CERT_FILE": "server.pem", "TLS_KEY_FILE": "server.key",
             "TLS_CLIENT_CA_FILE": "ca.key"}, "TLS_CLIENT_CA_FILE", id="ca-is-a-key",
        ),
    ],
)  # fmt: skip
def test_server_tls_files_must_work_together(
    certs: pki.LocalPki, files: dict[str, str], field: str
) -> None:
    folder = certs.ca_file.parent
    env = {name: str(folder / file) for name, file in files.items()}
    with pytest.raises(SettingsError) as caught:
        RpcSettings.from_env(env, "EPG", default_port=50051)
    assert caught.value.name == field


async def test_a_bad_certificate_is_one_clear_startup_error(
    keys: KeyStore, certs: pki.LocalPki
) -> None:
    settings = RpcSettings(tls_cert_file=certs.server.cert_file, tls_key_file=certs.ca.key_file)
    with pytest.raises(StartupError, match=r"TLS_KEY_FILE.*is not the private key"):
        await start_server(settings, services=[key_service(keys)], authenticator=keys)


def test_client_tls_reads_the_environment_once(certs: pki.LocalPki) -> None:
    assert ClientTls.from_env({}) is None
    tls = ClientTls.from_env(
        {
            "GRPC_CLIENT_CA_FILE": str(certs.ca_file),
            "GRPC_CLIENT_CERT_FILE": str(certs.client.cert_file),
            "GRPC_CLIENT_KEY_FILE": str(certs.client.key_file),
            "GRPC_CLIENT_SERVER_NAME": "epg.internal",
        }
    )
    assert tls == ClientTls(
        certs.ca_file, certs.client.cert_file, certs.client.key_file, "epg.internal"
    )
    assert tls.mutual


def _client_env(certs: pki.LocalPki, *names: str) -> dict[str, str]:
    files = {
        "GRPC_CLIENT_CA_FILE": certs.ca_file,
        "GRPC_CLIENT_CERT_FILE": certs.client.cert_file,
        "GRPC_CLIENT_KEY_FILE": certs.client.key_file,
    }
    return {name: str(files[name]) for name in names}


@pytest.mark.parametrize(
    ("names", "extra", "field"),
    [
        pytest.param(
            ("GRPC_CLIENT_CA_FILE", "GRPC_CLIENT_CERT_FILE"), {}, "GRPC_CLIENT_KEY_FILE",
            id="cert-without-key",
        ),
        pytest.param(
            ("GRPC_CLIENT_CA_FILE", "GRPC_CLIENT_KEY_FILE"), {}, "GRPC_CLIENT_CERT_FILE",
            id="key-without-cert",
        ),
        pytest.param(
            ("GRPC_CLIENT_CERT_FILE", "GRPC_CLIENT_KEY_FILE"), {}, "GRPC_CLIENT_CA_FILE",
            id="pair-without-ca",
        ),
        pytest.param(
            (), {"GRPC_CLIENT_SERVER_NAME": "epg.internal"}, "GRPC_CLIENT_CA_FILE",
            id="name-without-ca",
        ),
        pytest.param(
            (), {"GRPC_CLIENT_CA_FILE": "/no/such/ca.pem"}, "GRPC_CLIENT_CA_FILE",
            id="missing-ca-file",
        ),
        pytest.param(
            ("GRPC_CLIENT_CERT_FILE", "GRPC_CLIENT_KEY_FILE"), {"GRPC_CLIENT_CA_FILE": "KEY"},
            "GRPC_CLIENT_CA_FILE", id="ca-is-not-a-certificate",
        ),
        pytest.param(
            ("GRPC_CLIENT_CA_FILE", "GRPC_CLIENT_CERT_FILE"), {"GRPC_CLIENT_KEY_FILE": "CA"},
            "GRPC_CLIENT_KEY_FILE", id="key-is-not-a-key",
        ),
        pytest.param(
            ("GRPC_CLIENT_CA_FILE", "GRPC_CLIENT_CERT_FILE"),
            {"GRPC_CLIENT_KEY_FILE": "SERVER_KEY"}, "GRPC_CLIENT_KEY_FILE",
            id="key-of-another-certificate",
        ),
    ],
)  # fmt: skip
def test_client_tls_errors_name_the_variable(
    certs: pki.LocalPki, names: tuple[str, ...], extra: dict[str, str], field: str
) -> None:
    swaps = {
        "KEY": str(certs.client.key_file),
        "CA": str(certs.ca_file),
        "SERVER_KEY": str(certs.server.key_file),
    }
    env = {**_client_env(certs, *names), **{k: swaps.get(v, v) for k, v in extra.items()}}
    with pytest.raises(SettingsError) as caught:
        ClientTls.from_env(env)
    assert caught.value.name == field
    assert field in str(caught.value)


def test_cli_channels_take_tls_from_the_environment(certs: pki.LocalPki) -> None:
    assert clitools.client_tls({}) is None
    env = _client_env(certs, "GRPC_CLIENT_CA_FILE", "GRPC_CLIENT_CERT_FILE")
    with pytest.raises(clitools.CliError, match="GRPC_CLIENT_KEY_FILE"):
        clitools.open_channel(env, "127.0.0.1:1")
    env = _client_env(certs, "GRPC_CLIENT_CA_FILE")
    assert clitools.client_tls(env) == ClientTls(certs.ca_file)


async def test_cli_channel_dials_mtls(keys: KeyStore, tokens, certs: pki.LocalPki) -> None:
    settings = RpcSettings(
        tls_cert_file=certs.server.cert_file,
        tls_key_file=certs.server.key_file,
        tls_client_ca_file=certs.ca_file,
    )
    server, port = await start_server(settings, services=[key_service(keys)], authenticator=keys)
    env = _client_env(certs, "GRPC_CLIENT_CA_FILE", "GRPC_CLIENT_CERT_FILE", "GRPC_CLIENT_KEY_FILE")
    try:
        async with clitools.open_channel(env, f"127.0.0.1:{port}") as channel:
            who = await keys_pb2_grpc.KeyServiceStub(channel).WhoAmI(
                keys_pb2.WhoAmIRequest(), metadata=bearer(await tokens()), timeout=10
            )
        assert who.principal == "admin"
    finally:
        await server.stop(0)
