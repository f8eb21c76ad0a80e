"""Body codecs: what a client compresses comes back intact, and what an attacker compresses (bombs, garbage,
truncation) is refused without the agent allocating what the bomb would inflate to."""

from __future__ import annotations

import functools
import random
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import pytest
import zstandard
from otlp_agent.otlp import compression

from bench import payloads

MiB = 1024 * 1024
BOMB_SIZE = 200 * MiB
LIMIT = 4 * MiB
CODECS = ["gzip", "deflate", "zstd"]


@functools.cache
def sample(size: int = 100_000, seed: int = 5) -> bytes:
    """Telemetry-like bytes: repetitive text with random ids, so codecs have something to do."""
    rng = random.Random(seed)
    parts = []
    while sum(map(len, parts)) < size:
        parts.append(
            b"span http.route=/api/v1/items/%d trace=%032x " % (rng.randrange(1000), rng.getrandbits(128))
        )
    return b"".join(parts)[:size]


@pytest.mark.parametrize("encoding", CODECS)
@pytest.mark.parametrize("level", [None, 1, 3])
def test_what_is_encoded_decodes_to_the_same_bytes(encoding: str, level: int | None) -> None:
    data = sample()
    encoded = compression.encode(data, encoding, level)
    assert len(encoded) < len(data) / 2
    assert compression.decode(encoded, encoding, limit=len(data)) == data


@pytest.mark.parametrize("encoding", ["none", "identity", ""])
def test_no_encoding_passes_bytes_through(encoding: str) -> None:
    assert compression.encode(b"abc", encoding) == b"abc"
    assert compression.decode(b"abc", encoding, limit=3) == b"abc"


def test_encoding_names_are_case_and_space_insensitive_when_decoding() -> None:
    data = sample(1000)
    assert compression.decode(compression.encode(data, "gzip"), " GZip ", limit=1000) == data


def test_raw_deflate_from_clients_that_skip_the_zlib_wrapper_is_accepted() -> None:
    data = sample()
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    raw = compressor.compress(data) + compressor.flush()
    assert compression.decode(raw, "deflate", limit=len(data)) == data


def test_zlib_wrapped_deflate_from_other_libraries_is_accepted() -> None:
    data = sample()
    assert compression.decode(zlib.compress(data, 9), "deflate", limit=len(data)) == data


def test_a_gzip_level_trades_speed_for_size_on_otlp_payloads() -> None:
    data = b"".join(payloads.build_bodies(8, seed=3))  # ISA-L's levels are monotone on real OTLP data
    assert len(compression.encode(data, "gzip", 3)) < len(compression.encode(data, "gzip", 1))


def test_a_zstd_body_cut_short_is_bad_encoding_not_a_silent_prefix() -> None:
    data = random.Random(1).randbytes(2_000_000)
    encoded = compression.encode(data, "zstd")
    with pytest.raises(compression.BadEncoding):
        compression.decode(encoded[: int(len(encoded) * 0.9)], "zstd", limit=8 * MiB)


def test_an_empty_body_compressed_with_zstd_decodes_to_empty_like_gzip_does() -> None:
    assert compression.decode(compression.encode(b"", "gzip"), "gzip", limit=10) == b""
    assert compression.decode(compression.encode(b"", "zstd"), "zstd", limit=10) == b""


def test_a_zstd_body_of_several_frames_decodes_every_frame() -> None:
    body = compression.encode(b"first ", "zstd") + compression.encode(b"second", "zstd")
    assert compression.decode(body, "zstd", limit=100) == b"first second"


@pytest.mark.parametrize("encoding", [*CODECS, "identity"])
def test_a_body_exactly_at_the_limit_is_accepted_and_one_byte_over_is_too_large(encoding: str) -> None:
    data = sample(50_000)
    encoded = compression.encode(data, encoding)
    assert compression.decode(encoded, encoding, limit=len(data)) == data
    with pytest.raises(compression.TooLarge):
        compression.decode(encoded, encoding, limit=len(data) - 1)


def _bombs() -> dict[str, bytes]:
    """200 MiB of zeros as gzip, zlib deflate, raw deflate and zstd bodies (about 200 KiB each).

    After a full flush a deflate stream restarts from scratch, so every MiB of zeros compresses to the same
    bytes: one compressed MiB repeated 200 times is a valid stream, made in milliseconds.
    """
    zeros = bytes(MiB)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    one_mib = deflater.compress(zeros) + deflater.flush(zlib.Z_FULL_FLUSH)
    raw = one_mib * (BOMB_SIZE // MiB) + deflater.flush()
    crc, adler = 0, 1
    for _ in range(BOMB_SIZE // MiB):
        crc, adler = zlib.crc32(zeros, crc), zlib.adler32(zeros, adler)
    gzip_body = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + raw + struct.pack("<II", crc, BOMB_SIZE % 2**32)
    zlib_body = b"\x78\xda" + raw + struct.pack(">I", adler)
    zstd = zstandard.ZstdCompressor(level=3).compressobj()
    zstd_body = b"".join(zstd.compress(zeros) for _ in range(BOMB_SIZE // MiB)) + zstd.flush()
    return {"gzip": gzip_body, "deflate": zlib_body, "raw-deflate": raw, "zstd": zstd_body}


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    made = _bombs()
    # The bombs are real: unbounded decoders inflate them far past the limit.
    assert len(zlib.decompressobj(31).decompress(made["gzip"], 4 * LIMIT)) == 4 * LIMIT
    assert len(zlib.decompressobj().decompress(made["deflate"], 4 * LIMIT)) == 4 * LIMIT
    assert len(zstandard.ZstdDecompressor().stream_reader(made["zstd"]).read(4 * LIMIT)) == 4 * LIMIT
    return made


@pytest.mark.parametrize("kind", ["gzip", "deflate", "raw-deflate", "zstd"])
def test_a_compression_bomb_is_too_large_without_inflating_it(bombs: dict[str, bytes], kind: str) -> None:
    body = bombs[kind]
    assert len(body) < MiB < BOMB_SIZE
    encoding = "deflate" if kind == "raw-deflate" else kind
    tracemalloc.start()
    try:
        with pytest.raises(compression.TooLarge, match="exceeds the limit of 4194304 bytes"):
            compression.decode(body, encoding, limit=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * LIMIT + MiB, (
        f"decoding allocated {peak / MiB:.1f} MiB for a {LIMIT / MiB:.0f} MiB limit"
    )


def test_an_identity_body_over_the_limit_is_too_large() -> None:
    with pytest.raises(compression.TooLarge, match="body of 11 bytes exceeds the limit of 10"):
        compression.decode(b"x" * 11, "identity", limit=10)


TRUNCATIONS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("half", lambda b: b[: len(b) // 2]),
    ("header-only", lambda b: b[:5]),
]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize(("name", "cut"), TRUNCATIONS, ids=[n for n, _ in TRUNCATIONS])
def test_truncated_zlib_bodies_are_bad_encoding(
    encoding: str, name: str, cut: Callable[[bytes], bytes]
) -> None:
    encoded = compression.encode(sample(), encoding)
    with pytest.raises(compression.BadEncoding, match="truncated"):
        compression.decode(cut(encoded), encoding, limit=MiB)


def test_a_gzip_body_missing_only_its_trailer_is_bad_encoding() -> None:
    encoded = compression.encode(sample(), "gzip")
    with pytest.raises(compression.BadEncoding):
        compression.decode(encoded[:-4], "gzip", limit=MiB)


@pytest.mark.parametrize("encoding", CODECS)
def test_garbage_is_bad_encoding(encoding: str) -> None:
    garbage = random.Random(9).randbytes(4096)
    with pytest.raises(compression.BadEncoding):
        compression.decode(garbage, encoding, limit=MiB)


@pytest.mark.parametrize("encoding", CODECS)
def test_bytes_after_the_compressed_stream_are_bad_encoding(encoding: str) -> None:
    encoded = compression.encode(sample(10_000), encoding)
    with pytest.raises(compression.BadEncoding):
        compression.decode(encoded + b"trailing junk", encoding, limit=MiB)


def test_an_unknown_encoding_names_the_supported_ones() -> None:
    with pytest.raises(compression.BadEncoding) as caught:
        compression.decode(b"...", "br", limit=MiB)
    assert str(caught.value) == "unsupported Content-Encoding 'br': use gzip, deflate, zstd or none"


def test_encoding_with_an_unknown_codec_is_refused() -> None:
    with pytest.raises(compression.BadEncoding, match="unsupported encoding 'lz4'"):
        compression.encode(b"data", "lz4")
