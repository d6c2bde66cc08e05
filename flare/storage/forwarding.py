"""``ForwardingStore``: one participant's view of a store it shares with others.

A simulation or a test plays many participants against one store, and some of them
must see it differently: one counts the bytes it moves, one holds its uploads back, one
fails a download, one remembers what it has already checked. Each is a subclass that
overrides a hook and calls ``super()`` for the part that reaches the shared store.
"""

from flare.storage.base import StorageProvider


class ForwardingStore(StorageProvider):
    """A store whose hooks forward to ``inner``'s, under ``inner``'s size limit.

    Reads through it are verified here, like any provider's; ``inner`` only supplies the
    bytes. It lives beside :class:`StorageProvider` because it is the one provider that
    calls another provider's hooks rather than its public, verifying methods: going
    through ``inner.get`` would hash every blob twice, and a subclass counting what a
    download costs must see the bytes before any check refuses them.
    """

    def __init__(self, inner: StorageProvider) -> None:
        super().__init__(max_blob_size=inner.max_blob_size)
        self.inner = inner

    def _store(self, cid: str, data: bytes) -> None:
        self.inner._store(cid, data)

    def _load(self, cid: str, limit: int) -> bytes:
        return self.inner._load(cid, limit)

    def _contains(self, cid: str) -> bool:
        return self.inner._contains(cid)

    def _pin(self, cid: str) -> None:
        self.inner._pin(cid)

    def _is_pinned(self, cid: str) -> bool:
        return self.inner._is_pinned(cid)
