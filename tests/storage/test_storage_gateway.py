"""``KuboStore`` through a gateway: a live Kubo behind the authenticating loopback proxy of
``remote_doubles``. The right token round-trips blobs with Flare's CIDs; a wrong one is
refused as access denied; a gateway that corrupts what it serves is caught here, by the
CID; a gateway that is down is unavailable and, back up, serves what it held. Skipped
without an ``ipfs`` binary."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance.anvil_harness import free_port
from storage.remote_doubles import AuthenticatingGateway

from flare.node import KuboConfig, KuboNode, NodeError, find_ipfs
from flare.storage import (
    ContentMismatchError,
    KuboStore,
    StorageAccessDeniedError,
    StorageUnavailableError,
    compute_cid,
)

pytestmark = pytest.mark.kubo

TOKEN = "gateway-token"
BLOB = bytes(range(256)) * 2000  # two chunks: a dag-pb root over raw leaves


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthenticatingGateway]:
    try:
        binary = find_ipfs()
    except NodeError as exc:
        pytest.skip(f"needs an ipfs binary: {exc}")
    directory: Path = tmp_path_factory.mktemp("kubo")
    kubo = KuboNode(KuboConfig(directory, api_port=free_port()), binary)
    kubo.start()
    try:
        with AuthenticatingGateway(kubo.api_url, TOKEN) as proxy:
            yield proxy
    finally:
        kubo.stop(grace=5)


def store_through(gateway: AuthenticatingGateway, token: str = TOKEN) -> KuboStore:
    return KuboStore(gateway.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_the_right_token_round_trips_blobs_with_flare_s_cids(gateway) -> None:
    store = store_through(gateway)
    cid = store.put(BLOB)
    assert cid == str(compute_cid(BLOB)) and cid.startswith("bafybei")
    store.pin(cid)
    assert store.get(cid) == BLOB and store.is_pinned(cid)
    assert gateway.admitted["add"] >= 1 and gateway.admitted["cat"] >= 1


def test_a_wrong_token_is_access_denied(gateway) -> None:
    refused = sum(gateway.refused.values())
    store = store_through(gateway, "stolen-last-year")
    with pytest.raises(StorageAccessDeniedError, match="HTTP 401"):
        store.put(b"never stored")
    with pytest.raises(StorageAccessDeniedError, match="HTTP 401"):
        store.get(str(compute_cid(BLOB)))
    assert sum(gateway.refused.values()) == refused + 2


def test_a_gateway_that_corrupts_blobs_is_caught_by_the_cid(gateway) -> None:
    store = store_through(gateway)
    cid = store.put(BLOB)
    gateway.corrupt_cat = True
    try:
        with pytest.raises(ContentMismatchError, match=f"served for {cid}"):
            store.get(cid)
    finally:
        gateway.corrupt_cat = False
    assert store.get(cid) == BLOB


def test_a_gateway_that_is_down_is_unavailable_and_loses_nothing(gateway) -> None:
    store = store_through(gateway)
    cid = store.put(b"published before the outage")
    gateway.stop()
    try:
        with pytest.raises(StorageUnavailableError, match="unreachable"):
            store.get(cid)
        with pytest.raises(StorageUnavailableError, match="unreachable"):
            store.put(b"published during the outage")
    finally:
        gateway.start()
    assert store.get(cid) == b"published before the outage"
    assert store.get(store.put(b"published during the outage")) == b"published during the outage"
