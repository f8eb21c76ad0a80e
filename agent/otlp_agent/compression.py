"""Compression codecs for OTLP bodies: gzip, deflate, zstd.

Decoding is bounded: output stops at `limit` bytes and raises TooLarge, so a small compression bomb can never
become a large allocation. Encoders are made per call (a python-zstandard compressor must not be shared
between threads, and exports compress in a worker thread).
"""

from __future__ import annotations

import zlib

import zstandard

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
    # stream_reader bounds each read's output, so a bomb is stopped before it is inflated.
    reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True, closefd=False)
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := reader.read(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"decompressed body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except zstandard.ZstdError as exc:
        raise BadEncoding(f"invalid zstd body: {exc}") from None
    if not chunks and body:
        raise BadEncoding("invalid or truncated zstd body")
    return b"".join(chunks)


def encode(data: bytes, encoding: str, level: int | None = None) -> bytes:
    """Compress `data` for Content-Encoding `encoding` (none returns it unchanged)."""
    if encoding in ("none", "identity", ""):
        return data
    if encoding == "zstd":
        return bytes(zstandard.ZstdCompressor(level=level or 1).compress(data))
    if encoding == "gzip":
        compressor = zlib.compressobj(level or 1, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        return compressor.compress(data) + compressor.flush()
    if encoding == "deflate":
        return zlib.compress(data, level or 1)
    raise BadEncoding(f"unsupported encoding {encoding!r}")
