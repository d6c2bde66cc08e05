"""Keys and signatures this process derived are parsed by a look-up, once, and only their exact
bytes: anything else, however close, is decoded and checked in full."""

import pytest

from flare.crypto import pairing
from flare.crypto.bls import POP_DST, SecretKey, sign, verify
from flare.crypto.errors import InvalidPointEncoding


@pytest.fixture
def full_parses(monkeypatch) -> dict[str, int]:
    """How many signatures and keys were decoded in full (the key cache starts empty)."""
    counts = {"signature": 0, "key": 0}

    def counted(name: str, parse):
        def wrapper(data):
            counts[name] += 1
            return parse(data)

        return wrapper

    monkeypatch.setattr(
        pairing, "_parsed_signature", counted("signature", pairing._parsed_signature)
    )
    monkeypatch.setattr(pairing, "_parsed_public_key", counted("key", pairing._parsed_public_key))
    pairing._recent_public_key_point.cache_clear()
    # the points earlier tests derived are not this test's
    monkeypatch.setattr(pairing, "_derived_signatures", pairing._DerivedPoints())
    monkeypatch.setattr(pairing, "_derived_keys", pairing._DerivedPoints())
    return counts


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_a_derived_key_and_signature_are_looked_up_once_then_decoded(full_parses) -> None:
    key = SecretKey(12345)
    public_key = key.public_key()
    signature = sign(key, b"registration", POP_DST)
    assert verify(public_key, b"registration", signature, POP_DST)
    assert full_parses == {"signature": 0, "key": 0}
    # taken once: the same bytes again are decoded (the key then kept by the key cache)
    assert verify(public_key, b"registration", signature, POP_DST)
    assert full_parses == {"signature": 1, "key": 0}
    assert pairing.signature_point(signature) == pairing._parsed_signature(signature)


@pytest.mark.parametrize(
    ("at", "why"),
    [
        (16, "not a point on the curve"),  # x's first byte
        (100, "not a point on the curve"),  # within y
        (127, "not a point on the curve"),  # y's last byte
        (70, "non-zero padding"),  # y's padding
    ],
)
def test_bytes_next_to_a_derived_signature_are_refused_as_ever(full_parses, at, why) -> None:
    key = SecretKey(777)
    signature = sign(key, b"seat", POP_DST)
    hostile = flipped(signature, at)
    with pytest.raises(InvalidPointEncoding, match=why):
        pairing.signature_point(hostile)
    assert not verify(key.public_key(), b"seat", hostile, POP_DST)
    assert full_parses["signature"] == 2
    # the hostile bytes did not use up the honest ones' entry
    assert verify(key.public_key(), b"seat", signature, POP_DST)
    assert full_parses["signature"] == 2


def test_bytes_next_to_a_derived_key_are_refused_as_ever(full_parses) -> None:
    public_key = SecretKey(4242).public_key()
    for hostile, why in [
        (flipped(public_key, 255), "not a point on the curve"),
        (flipped(public_key, 0), "non-zero padding"),
    ]:
        with pytest.raises(InvalidPointEncoding, match=why):
            pairing.public_key_point(hostile)
    assert full_parses["key"] == 2
    assert pairing.public_key_point(public_key) == pairing._parsed_public_key(public_key)
    assert full_parses["key"] == 3  # the last one, called directly


def test_a_bytearray_of_derived_bytes_is_decoded_in_full(full_parses) -> None:
    key = SecretKey(99)
    signature = sign(key, b"m", POP_DST)
    assert pairing.signature_point(bytearray(signature)) == pairing.signature_point(signature)
    assert pairing.public_key_point(bytearray(key.public_key())) is not None
    assert full_parses == {"signature": 1, "key": 1}


def test_only_the_latest_derived_points_are_kept(full_parses, monkeypatch) -> None:
    monkeypatch.setattr(pairing, "DERIVED_POINTS_KEPT", 3)
    key = SecretKey(5)
    signatures = [sign(key, bytes([index]), POP_DST) for index in range(5)]
    for signature in signatures:
        pairing.signature_point(signature)
    assert full_parses["signature"] == 2  # the two oldest were let go


def test_a_lowered_bound_lets_go_of_every_point_past_it(full_parses, monkeypatch) -> None:
    key = SecretKey(6)
    signatures = [sign(key, bytes([index]), POP_DST) for index in range(5)]
    monkeypatch.setattr(pairing, "DERIVED_POINTS_KEPT", 2)
    newest = sign(key, b"newest", POP_DST)
    for signature in [*signatures, newest]:
        pairing.signature_point(signature)
    assert full_parses["signature"] == 4  # only the newest two were kept
