"""Compression codecs for OTLP bodies: gzip, deflate, zstd.

Decoding is bounded: output stops at `limit` bytes and raises TooLarge, so a small compression bomb can never
become a large allocation. Encoders are made per call (a python-zstandard compressor must not be shared
between threads, and exports compress in a worker thread).

gzip and deflate are compressed with ISA-L (`isal`): about 4x faster than zlib at level 1 with a slightly
better ratio. Its levels are 1-3 (the default is 1); spec validation enforces that range.
"""

from __future__ import annotations

import zlib

import zstandard
from isal import isal_zlib

_READ_CHUNK = 256 * 1024


class TooLarge(ValueError):
    """The decoded body would exceed the size limit."""


class BadEncoding(ValueError):
    """The body is not valid data for its declared encoding, or the encoding is unknown."""


SUPPORTED = ("gzip", "deflate", "zstd", "identity")


def decode(body: bytes, encoding: str, limit: int) -> bytes:
    """Decompress `body` declared with Content-Encoding `encoding`, producing at most `limit` bytes."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity", "none"):
        if len(body) > limit:
            raise TooLarge(f"body of {len(body)} bytes exceeds the limit of {limit}")
        return body
    if encoding == "zstd":
        return _decode_zstd(body, limit)
    if encoding == "gzip":
        return _decode_zlib(body, zlib.MAX_WBITS | 16, limit)
    if encoding == "deflate":
        # HTTP "deflate" is zlib-wrapped (RFC 1950), but some clients send raw deflate (RFC 1951).
        wbits = zlib.MAX_WBITS if body[:1] and body[0] & 0x0F == 8 else -zlib.MAX_WBITS
        return _decode_zlib(body, wbits, limit)
    raise BadEncoding(f"unsupported Content-Encoding {encoding!r}: use gzip, deflate, zstd or none")


def _decode_zlib(body: bytes, wbits: int, limit: int) -> bytes:
    decoder = zlib.decompressobj(wbits)
    try:
        out = decoder.decompress(body, limit + 1)
        if len(out) > limit:
            raise TooLarge(f"decompressed body exceeds the limit of {limit} bytes")
        if not decoder.eof:
            if decoder.unconsumed_tail:
                raise TooLarge(f"decompressed body exceeds the limit of {limit} bytes")
            raise BadEncoding("truncated compressed body")
        if decoder.unused_data:
            raise BadEncoding("trailing bytes after the compressed stream")
    except zlib.error as exc:
        raise BadEncoding(f"invalid compressed body: {exc}") from None
    return out


def _decode_zstd(body: bytes, limit: int) -> bytes:
    # Two passes, because neither API does both jobs: stream_reader bounds the output (a bomb is stopped
    # after `limit` bytes, counted in a reused buffer) but cannot tell a truncated frame from a finished one;
    # decompressobj knows (`eof`) but has no output bound. zstd decodes at GB/s, so the first pass is cheap.
    decoder = zstandard.ZstdDecompressor()
    buffer = bytearray(_READ_CHUNK)
    size = 0
    try:
        with decoder.stream_reader(body, read_across_frames=True, closefd=False) as reader:
            while read := reader.readinto(buffer):
                size += read
                if size > limit:
                    raise TooLarge(f"decompressed body exceeds the limit of {limit} bytes")
        frames: list[bytes] = []
        remaining = body
        while remaining:  # one decompressobj per frame: a body may hold several
            frame = decoder.decompressobj()
            frames.append(frame.decompress(remaining))
            if not frame.eof:
                raise BadEncoding("truncated zstd body")
            remaining = frame.unused_data
    except zstandard.ZstdError as exc:
        raise BadEncoding(f"invalid zstd body: {exc}") from None
    return b"".join(frames)


def encode(data: bytes, encoding: str, level: int | None = None) -> bytes:
    """Compress `data` for Content-Encoding `encoding` (none returns it unchanged)."""
    if encoding in ("none", "identity", ""):
        return data
    if encoding == "zstd":
        return bytes(zstandard.ZstdCompressor(level=level or 1).compress(data))
    if encoding in ("gzip", "deflate"):
        wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
        compressor = isal_zlib.compressobj(level or 1, zlib.DEFLATED, wbits)
        return bytes(compressor.compress(data) + compressor.flush())
    raise BadEncoding(f"unsupported encoding {encoding!r}")
