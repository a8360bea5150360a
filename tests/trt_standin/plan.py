"""The stand-in's serialized plan format (never confused with a real TensorRT plan).

Layout, little-endian:
    MAGIC (20 bytes) | format version u32 | header length u32 | header JSON (utf-8)
    | ONNX length u64 | ONNX model bytes | CRC32 u32 of everything before it
The header holds the TensorRT version that built it, the build configuration and the I/O table.
"""

from __future__ import annotations

import json
import struct
import zlib

MAGIC = b"TRT-STANDIN-PLAN\x00\x00\x00\x00"
FORMAT_VERSION = 1


class PlanError(ValueError):
    """The bytes are not a readable stand-in plan; the message says why."""


def pack(header: dict, onnx_bytes: bytes) -> bytes:
    header_bytes = json.dumps(header, sort_keys=True).encode()
    body = (
        MAGIC
        + struct.pack("<II", FORMAT_VERSION, len(header_bytes))
        + header_bytes
        + struct.pack("<Q", len(onnx_bytes))
        + onnx_bytes
    )
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes) -> tuple[dict, bytes]:
    if len(data) < len(MAGIC) + 12:
        raise PlanError(f"the buffer is {len(data)} bytes, too short to be a serialized engine")
    if not data.startswith(MAGIC):
        raise PlanError("the buffer does not start with the stand-in plan magic tag: it is corrupt, or not a plan")
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != crc:
        raise PlanError("the plan's checksum does not match: the file is truncated or corrupt")
    offset = len(MAGIC)
    version, header_len = struct.unpack_from("<II", data, offset)
    if version != FORMAT_VERSION:
        raise PlanError(f"unknown stand-in plan format version {version}")
    offset += 8
    header = json.loads(data[offset : offset + header_len])
    offset += header_len
    (onnx_len,) = struct.unpack_from("<Q", data, offset)
    offset += 8
    return header, data[offset : offset + onnx_len]
