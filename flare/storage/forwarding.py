"""``ForwardingStore``: one participant's view of a store it shares with others.

A simulation or a test plays many participants against one store, and some of them
must see it differently: one counts the bytes it moves, one holds its uploads back, one
fails a download, one remembers what it has already checked. Each is a subclass that
overrides a hook and calls ``super()`` for the part that reaches the shared store.
"""

from flare.storage.base import StorageProvider


class ForwardingStore(StorageProvider):
    """A store whose hooks forward to ``inner``'s transport, under ``inner``'s size limit.

    Reads through it are verified here, like any provider's; ``inner`` only supplies the
    bytes. It goes through ``inner.transport`` rather than ``inner``'s public, verifying
    methods: going through ``inner.get`` would hash every blob twice, and a subclass
    counting what a download costs must see the bytes before any check refuses them.
    """

    def __init__(self, inner: StorageProvider) -> None:
        super().__init__(max_blob_size=inner.max_blob_size)
        self.inner = inner
        self._inner_transport = inner.transport

    def _store(self, cid: str, data: bytes) -> None:
        self._inner_transport.store(cid, data)

    def _load(self, cid: str, limit: int) -> bytes:
        return self._inner_transport.load(cid, limit)

    def _contains(self, cid: str) -> bool:
        return self._inner_transport.contains(cid)

    def _pin(self, cid: str) -> None:
        self._inner_transport.pin(cid)

    def _is_pinned(self, cid: str) -> bool:
        return self._inner_transport.is_pinned(cid)
