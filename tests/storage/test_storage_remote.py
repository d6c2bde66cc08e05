"""Remote endpoints without a binary: credentials from files, ``KuboStore`` with headers and
a refusing gateway, ``open_store``'s wiring, and ``PinningService`` against the spec
server of ``remote_doubles`` (written here from the spec; no real service is reachable).
The same against a live Kubo behind a gateway: ``tests/federation/test_remote_store_*``.
"""

from pathlib import Path

import httpx
import pytest
from storage.remote_doubles import SpecPinningService

from flare.config import NetworkConfig, load_network_config, open_store
from flare.errors import ConfigError
from flare.storage import (
    KuboStore,
    PinningService,
    StorageAccessDeniedError,
    StorageUnavailableError,
    compute_cid,
)
from flare.storage.remote import check_credential_transport, read_header_file, read_token_file

TOKEN = "s3cr3t-token"
CID = str(compute_cid(b"pin me"))


def test_header_file_gives_every_header_and_skips_comments(tmp_path: Path) -> None:
    path = tmp_path / "gateway.header"
    path.write_text(f"# issued 2026-12-01\nAuthorization: Bearer {TOKEN}\n\nX-Tenant: lab-7\n")
    assert read_header_file(path) == {"Authorization": f"Bearer {TOKEN}", "X-Tenant": "lab-7"}


@pytest.mark.parametrize(
    "content",
    ["", "# only a comment\n", "Authorization Bearer x\n", "Bad Name: x\n", "X-Key:\n",
     "X-Key: a\tb\n", "X-Key: caf\u00e9\n"],
)  # fmt: skip
def test_header_file_refuses_what_is_not_a_header(tmp_path: Path, content: str) -> None:
    path = tmp_path / "gateway.header"
    path.write_text(content)
    with pytest.raises(ConfigError) as refused:
        read_header_file(path)
    assert "a\tb" not in str(refused.value)  # a value is never echoed


def test_token_file_is_one_token(tmp_path: Path) -> None:
    path = tmp_path / "pinning.token"
    path.write_text(f"{TOKEN}\n")
    assert read_token_file(path) == TOKEN
    path.write_text("two tokens\n")
    with pytest.raises(ConfigError, match="one token"):
        read_token_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_token_file(tmp_path / "missing")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://ipfs-rpc.example.org", True),
        ("http://127.0.0.1:5001", True),
        ("http://[::1]:5001", True),
        ("http://localhost:5001", True),
        ("http://ipfs-rpc.example.org:5001", False),
        ("http://10.0.0.7:5001", False),
        ("ftp://127.0.0.1", False),
    ],
)
def test_credentials_travel_only_where_nobody_reads_them(url: str, allowed: bool) -> None:
    if allowed:
        check_credential_transport(url, "IPFS endpoint")
    else:
        with pytest.raises(ConfigError, match="https"):
            check_credential_transport(url, "IPFS endpoint")


def _gateway(seen: list[httpx.Request], status: int = 200) -> KuboStore:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, text="unauthorized")
        return httpx.Response(status, json={"Hash": str(compute_cid(b"blob"))})

    return KuboStore(
        "https://gateway.example",
        headers={"Authorization": f"Bearer {TOKEN}"},
        transport=httpx.MockTransport(handler),
    )


def test_kubo_store_sends_its_headers_with_every_request() -> None:
    seen: list[httpx.Request] = []
    store = _gateway(seen)
    assert store.put(b"blob") == str(compute_cid(b"blob"))
    assert store.has(str(compute_cid(b"blob")))
    assert [r.url.path for r in seen] == ["/api/v0/add", "/api/v0/dag/stat"]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in seen)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusing_gateway_is_access_denied_on_every_call(status: int) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="token expired")

    store = KuboStore("https://gateway.example", transport=httpx.MockTransport(refuse))
    for call in (lambda: store.put(b"x"), lambda: store.get(CID), lambda: store.pin(CID)):
        with pytest.raises(StorageAccessDeniedError, match=f"HTTP {status}.*auth header"):
            call()


def test_open_store_reads_the_header_file_and_refuses_plain_http_to_a_remote(
    tmp_path: Path,
) -> None:
    header = tmp_path / "gateway.header"
    header.write_text(f"Authorization: Bearer {TOKEN}\n")
    remote = NetworkConfig(ipfs_api_url="http://gateway.example:5001", ipfs_auth_header_file=header)
    with pytest.raises(ConfigError, match="https"):
        open_store(remote)
    store = open_store(
        NetworkConfig(ipfs_api_url="https://gateway.example", ipfs_auth_header_file=header)
    )
    assert isinstance(store, KuboStore)
    assert store._client.headers["Authorization"] == f"Bearer {TOKEN}"
    store.close()


def test_a_network_file_names_the_credential_files_relative_to_itself(tmp_path: Path) -> None:
    device = tmp_path / "device"
    (device / "keys").mkdir(parents=True)
    (device / "keys" / "gateway.header").write_text(f"Authorization: Bearer {TOKEN}\n")
    (device / "keys" / "pinning.token").write_text(f"{TOKEN}\n")
    (device / "flare.toml").write_text(
        'ipfs_api_url = "http://127.0.0.1:5001"\n'
        'ipfs_auth_header_file = "keys/gateway.header"\n'
        'pinning_service_url = "https://pin.example.org/psa"\n'
        'pinning_token_file = "keys/pinning.token"\n'
    )
    config = load_network_config(device / "flare.toml")
    assert config.ipfs_auth_header_file == device / "keys" / "gateway.header"
    assert config.pinning_token_file == device / "keys" / "pinning.token"
    store = open_store(config)
    assert isinstance(store, KuboStore)
    assert store._client.headers["Authorization"] == f"Bearer {TOKEN}"
    assert store._pinning is not None and store._pinning.endpoint == "https://pin.example.org/psa"
    store.close()


def test_pinning_settings_go_together() -> None:
    with pytest.raises(ConfigError, match="go together"):
        NetworkConfig(pinning_service_url="https://pin.example")


@pytest.fixture
def pinning_service():
    with SpecPinningService(TOKEN) as service:
        yield service


def test_pinning_service_requests_a_pin_once(pinning_service: SpecPinningService) -> None:
    client = PinningService(pinning_service.url, TOKEN)
    assert client.status(CID) is None
    assert client.request_pin(CID) == "queued"
    assert client.request_pin(CID) == "queued"  # already asked: no second request
    assert pinning_service.posts == 1
    pinning_service.settle()
    assert client.status(CID) == "pinned"
    assert pinning_service.requested_cids() == {CID}


def test_pinning_service_files_a_failed_request_again(
    pinning_service: SpecPinningService,
) -> None:
    client = PinningService(pinning_service.url, TOKEN)
    client.request_pin(CID)
    pinning_service.settle("failed")
    assert client.status(CID) == "failed"
    assert client.request_pin(CID) == "queued"
    assert pinning_service.posts == 2


def test_pinning_service_errors_are_typed(pinning_service: SpecPinningService) -> None:
    with pytest.raises(StorageAccessDeniedError, match="UNAUTHORIZED"):
        PinningService(pinning_service.url, "wrong").request_pin(CID)
    pinning_service.fail_next = True
    with pytest.raises(StorageUnavailableError, match=r"HTTP 500.*storage backend down"):
        PinningService(pinning_service.url, TOKEN).request_pin(CID)
    url = pinning_service.url
    pinning_service.stop()
    with pytest.raises(StorageUnavailableError, match="unreachable"):
        PinningService(url, TOKEN).request_pin(CID)


def test_pinning_service_refuses_a_reply_about_another_cid() -> None:
    other = str(compute_cid(b"another blob"))

    def liar(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"count": 0, "results": []})
        return httpx.Response(202, json={"requestid": "1", "status": "queued",
                                         "pin": {"cid": other}})  # fmt: skip

    client = PinningService("https://pin.example", TOKEN, transport=httpx.MockTransport(liar))
    with pytest.raises(StorageUnavailableError, match="not about"):
        client.request_pin(CID)


def test_kubo_store_asks_its_pinning_service_to_keep_what_it_pins(
    pinning_service: SpecPinningService,
) -> None:
    def kubo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"Pins": [request.url.params["arg"]]})

    store = KuboStore(
        "http://127.0.0.1:5001",
        pinning=PinningService(pinning_service.url, TOKEN),
        transport=httpx.MockTransport(kubo),
    )
    store.pin(CID)
    store.pin(CID)
    assert pinning_service.requested_cids() == {CID}
    assert pinning_service.posts == 1
    store.close()
