"""CID strings, binary form and the on-chain pair: parse, format, reject."""

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flare.errors import FlareError
from flare.storage import (
    CODEC_DAG_PB,
    CODEC_RAW,
    Cid,
    InvalidCidError,
    cid_from_onchain,
    cid_to_onchain,
    parse_cid,
)
from flare.storage.cid import (
    CANONICAL_CID_TEXT,
    decode_base32,
    decode_varint,
    encode_base32,
    encode_varint,
)

# Published CIDs (the IPFS docs and countless examples): sha2-256 raw leaves.
HELLO_WORLD_RAW = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
EMPTY_RAW = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

codecs = st.sampled_from([CODEC_RAW, CODEC_DAG_PB])
digests = st.binary(min_size=32, max_size=32)


def test_published_raw_cids_parse_to_their_sha256() -> None:
    assert parse_cid(HELLO_WORLD_RAW) == Cid(CODEC_RAW, hashlib.sha256(b"hello world").digest())
    assert parse_cid(EMPTY_RAW) == Cid(CODEC_RAW, hashlib.sha256(b"").digest())


def test_binary_form_is_version_codec_multihash() -> None:
    digest = bytes(range(32))
    assert bytes(Cid(CODEC_DAG_PB, digest)) == b"\x01\x70\x12\x20" + digest
    assert bytes(Cid(CODEC_RAW, digest)) == b"\x01\x55\x12\x20" + digest


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02")],
)
def test_varint_known_encodings(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_roundtrip(value: int) -> None:
    encoded = encode_varint(value)
    assert decode_varint(b"\xff" + encoded, 1) == (value, 1 + len(encoded))


@pytest.mark.parametrize("bad", [b"", b"\x80", b"\x80\x00", b"\x81\x00", b"\xff" * 10])
def test_varint_rejects_truncated_non_minimal_and_overlong(bad: bytes) -> None:
    with pytest.raises(ValueError):
        decode_varint(bad)


def test_base32_matches_rfc4648_vectors_lowercased_unpadded() -> None:
    assert encode_base32(b"foobar") == "mzxw6ytboi"
    assert encode_base32(b"f") == "my"
    assert decode_base32("mzxw6ytboi") == b"foobar"


@given(st.binary(max_size=64))
def test_base32_roundtrip(data: bytes) -> None:
    assert decode_base32(encode_base32(data)) == data


@given(codecs, digests)
def test_string_roundtrip(codec: int, digest: bytes) -> None:
    text = str(Cid(codec, digest))
    assert len(text) == 59
    assert text.startswith("bafkrei" if codec == CODEC_RAW else "bafybei")
    assert parse_cid(text) == Cid(codec, digest)
    assert str(parse_cid(text)) == text


@given(codecs, digests)
def test_onchain_roundtrip(codec: int, digest: bytes) -> None:
    text = cid_from_onchain(codec, digest)
    assert cid_to_onchain(text) == (codec, digest)
    assert cid_from_onchain(*cid_to_onchain(text)) == text


def test_onchain_accepts_bytes_like_digest() -> None:
    digest = hashlib.sha256(b"hello world").digest()
    assert cid_from_onchain(CODEC_RAW, bytearray(digest)) == HELLO_WORLD_RAW
    assert cid_from_onchain(CODEC_RAW, memoryview(digest)) == HELLO_WORLD_RAW


@pytest.mark.parametrize(
    ("codec", "digest"),
    [
        (0x71, bytes(32)),  # dag-cbor: not a Flare codec
        (CODEC_RAW, bytes(31)),
        (CODEC_RAW, bytes(33)),
        (True, bytes(32)),
        ("0x55", bytes(32)),
        (CODEC_RAW, "00" * 32),
    ],
)
def test_onchain_rejects_bad_pairs(codec: object, digest: object) -> None:
    with pytest.raises(InvalidCidError):
        cid_from_onchain(codec, digest)  # type: ignore[arg-type]


def _binary_cid_text(binary: bytes) -> str:
    return "b" + encode_base32(binary)


SHA = hashlib.sha256(b"x").digest()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "b",
        "hello",
        "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n",  # CIDv0
        HELLO_WORLD_RAW.upper(),  # multibase 'B', upper case
        "B" + HELLO_WORLD_RAW[1:],
        "z" + HELLO_WORLD_RAW[1:],  # wrong multibase prefix
        HELLO_WORLD_RAW[:-1],  # truncated
        HELLO_WORLD_RAW + "a",  # too long
        HELLO_WORLD_RAW[:-1] + "f",  # non-zero trailing bits: non-canonical
        HELLO_WORLD_RAW[:10] + "1" + HELLO_WORLD_RAW[11:],  # '1' is not base32
        HELLO_WORLD_RAW[:10] + "=" + HELLO_WORLD_RAW[11:],
        " " + HELLO_WORLD_RAW,
        "b" * 5000,
        _binary_cid_text(b"\x00\x55\x12\x20" + SHA),  # version 0
        _binary_cid_text(b"\x02\x55\x12\x20" + SHA),  # version 2
        _binary_cid_text(b"\x01\x71\x12\x20" + SHA),  # dag-cbor
        _binary_cid_text(b"\x01\x55\x13\x40" + SHA + SHA),  # sha2-512
        _binary_cid_text(b"\x01\x55\x12\x1f" + SHA[:31]),  # short digest
        _binary_cid_text(b"\x01\x55\x12\x20" + SHA + b"\x00"),  # trailing byte
        _binary_cid_text(b"\x01\xd5\x00\x12\x20" + SHA),  # non-minimal varint codec
        _binary_cid_text(b"\x01"),
    ],
)
def test_invalid_cid_strings_raise_typed_error(bad: str) -> None:
    with pytest.raises(InvalidCidError) as raised:
        parse_cid(bad)
    assert isinstance(raised.value, FlareError)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("bad", [None, 42, b"bafkrei", ["b"]])
def test_non_string_cids_raise_typed_error(bad: object) -> None:
    with pytest.raises(InvalidCidError):
        parse_cid(bad)  # type: ignore[arg-type]


@given(st.text(max_size=80))
def test_arbitrary_text_either_parses_canonically_or_raises_typed_error(text: str) -> None:
    try:
        parsed = parse_cid(text)
    except InvalidCidError:
        return
    assert str(parsed) == text


def _parses(text: str) -> bool:
    try:
        parse_cid(text)
    except InvalidCidError:
        return False
    return True


@given(codecs, digests)
def test_the_canonical_pattern_matches_every_canonical_cid(codec: int, digest: bytes) -> None:
    assert CANONICAL_CID_TEXT.fullmatch(str(Cid(codec, digest)))


@pytest.mark.parametrize("cid", [HELLO_WORLD_RAW, str(Cid(CODEC_DAG_PB, bytes(range(32))))])
def test_the_canonical_pattern_refuses_every_one_character_change_parse_refuses(cid: str) -> None:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567ABQ01/.="
    for position in range(len(cid)):
        for character in alphabet:
            changed = cid[:position] + character + cid[position + 1 :]
            assert bool(CANONICAL_CID_TEXT.fullmatch(changed)) == _parses(changed), changed
    for changed in (cid[:-1], cid + "a", "", "b"):
        assert not CANONICAL_CID_TEXT.fullmatch(changed) and not _parses(changed)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567", min_size=52, max_size=52))
def test_the_canonical_pattern_agrees_with_parse_on_random_text(middle: str) -> None:
    for text in ("bafkrei" + middle, "bafybei" + middle, "bafkrem" + middle):
        assert bool(CANONICAL_CID_TEXT.fullmatch(text)) == _parses(text)
