"""The on-chain CID string is memoised without letting a refused pair ride on a valid one."""

import hashlib

import pytest

from flare.storage import InvalidCidError
from flare.storage.cid import CODEC_RAW, Cid, cid_from_onchain

DIGEST = hashlib.sha256(b"memoised").digest()


def test_a_repeated_pair_gives_the_same_string() -> None:
    first = cid_from_onchain(CODEC_RAW, DIGEST)

    assert cid_from_onchain(CODEC_RAW, DIGEST) == first == str(Cid(CODEC_RAW, DIGEST))


@pytest.mark.parametrize("codec", [float(CODEC_RAW), "85"])
def test_an_equal_but_refused_codec_is_still_refused(codec: object) -> None:
    cid_from_onchain(CODEC_RAW, DIGEST)

    with pytest.raises(InvalidCidError):
        cid_from_onchain(codec, DIGEST)  # type: ignore[arg-type]


def test_a_refused_pair_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidCidError):
            cid_from_onchain(0x71, DIGEST)
