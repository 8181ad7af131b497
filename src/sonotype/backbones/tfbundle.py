"""Read a TensorFlow "V2" tensor bundle (a checkpoint's ``.index`` + ``.data-*``) without TensorFlow.

The ``.index`` file is a LevelDB-format SSTable (TensorFlow's ``core/lib/io/table``): a 48-byte
footer points at an index block whose entries point at data blocks; every block holds
prefix-compressed key/value entries followed by a restart array, and is followed on disk by a
one-byte compression type and a masked CRC32C. The key ``""`` maps to a ``BundleHeaderProto``;
every other key is a tensor name mapping to a ``BundleEntryProto`` (dtype, shape, shard, offset,
size, masked CRC32C) that locates the tensor's raw little-endian bytes in a ``.data-*`` shard.

Only what a single-shard, unpartitioned, uncompressed checkpoint needs is supported; anything
else raises :class:`~sonotype.errors.ModelError` naming what was found, as does a truncated or
corrupt file (never an ``IndexError``).

Examples
--------
>>> tensors = read_bundle(Path("MSD_musicnn/.index"), Path("MSD_musicnn/.data-00000-of-00001"))  # doctest: +SKIP
>>> tensors["conv2d/kernel"].shape  # doctest: +SKIP
(7, 38, 1, 204)
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ModelError

__all__ = [
    "BundleEntry",
    "crc32c",
    "is_optimizer_slot",
    "mask_crc",
    "read_bundle",
    "read_index",
    "unmask_crc",
]

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48  # two block handles padded to 40 bytes, then the 8-byte magic
BLOCK_TRAILER = 5  # compression type byte + masked crc32c
MASK_DELTA = 0xA282EAD8

# TensorFlow DataType enum -> numpy little-endian dtype (types.proto); strings are not supported
DTYPES: dict[int, str] = {
    1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?",
    14: "<u2",  # bfloat16 bits; returned raw as uint16
    17: "<u2", 19: "<f2", 22: "<u4", 23: "<u8",
}


def is_optimizer_slot(name: str) -> bool:
    """True for optimiser state saved beside the weights (Adam slots, ``beta*_power``, ``global_step``)."""
    last = name.rsplit("/", 1)[-1]
    return last in ("Adam", "Adam_1", "beta1_power", "beta2_power", "global_step") or last.startswith(
        ("beta1_power_", "beta2_power_")
    )


# --- crc32c (Castagnoli), vectorised with numpy --------------------------------------------------


@lru_cache(maxsize=1)
def _crc_table() -> np.ndarray:
    poly = 0x82F63B78  # reflected Castagnoli polynomial
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(poly), table >> 1).astype(np.uint32)
    return table


@lru_cache(maxsize=8)
def _shift_tables(n: int) -> np.ndarray:
    """(4, 256) tables of the linear map "advance a raw CRC state over ``n`` zero bytes"."""
    table = _crc_table()
    basis = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    for _ in range(n):
        basis = table[basis & 0xFF] ^ (basis >> 8)
    out = np.zeros((4, 256), dtype=np.uint32)
    for j in range(4):
        for b in range(256):
            acc = 0
            for bit in range(8):
                if b >> bit & 1:
                    acc ^= int(basis[8 * j + bit])
            out[j, b] = acc
    return out


def crc32c(data: bytes | np.ndarray, *, chunk: int = 512) -> int:
    """CRC32C of ``data`` (standard: initial value and final xor ``0xFFFFFFFF``).

    The bytes are cut into rows of ``chunk`` bytes whose raw CRCs are computed in parallel (one
    numpy table look-up per byte column), then chained: the CRC is linear over GF(2), so a row's
    state is carried over the next row by a precomputed "advance ``chunk`` zero bytes" map. About
    100x faster than a byte-by-byte Python loop (9 MB in well under a second).
    """
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    table = _crc_table()
    n_rows = buf.size // chunk
    state = 0xFFFFFFFF
    if n_rows:
        rows = buf[: n_rows * chunk].reshape(n_rows, chunk)
        crcs = np.zeros(n_rows, dtype=np.uint32)
        crcs[0] = 0xFFFFFFFF  # only the first row starts from the initial value; the others from 0
        for i in range(chunk):
            crcs = table[(crcs ^ rows[:, i]) & 0xFF] ^ (crcs >> 8)
        shift = _shift_tables(chunk)
        state = int(crcs[0])
        for c in crcs[1:].tolist():
            state = (
                int(shift[0, state & 0xFF]) ^ int(shift[1, state >> 8 & 0xFF])
                ^ int(shift[2, state >> 16 & 0xFF]) ^ int(shift[3, state >> 24]) ^ c
            )
    tab = table.tolist()
    for byte in buf[n_rows * chunk :].tolist():
        state = tab[(state ^ byte) & 0xFF] ^ (state >> 8)
    return state ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """LevelDB/TensorFlow's masked CRC (stored so that a CRC of CRCs is not degenerate)."""
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    """Inverse of :func:`mask_crc`."""
    rot = (masked - MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --- protobuf wire format and the SSTable --------------------------------------------------------


def _varint(buf: bytes, pos: int, what: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ModelError(f"tensor bundle index: truncated or malformed varint in {what}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def _fields(buf: bytes, what: str) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a protobuf message: ints for varint/fixed, bytes for length-delimited."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos, what)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, what)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise ModelError(f"tensor bundle index: truncated fixed-width field in {what}")
            value = int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        elif wire == 2:
            size, pos = _varint(buf, pos, what)
            if pos + size > len(buf):
                raise ModelError(f"tensor bundle index: truncated length-delimited field in {what}")
            value = bytes(buf[pos : pos + size])
            pos += size
        else:
            raise ModelError(f"tensor bundle index: unsupported protobuf wire type {wire} in {what}")
        out.append((field, value))
    return out


@dataclass(frozen=True)
class BundleEntry:
    """One decoded ``BundleEntryProto``: where a tensor's bytes are and what they are."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int  # masked, as stored
    sliced: bool


def _entry(name: str, value: bytes) -> BundleEntry:
    f = dict.fromkeys((1, 3, 4, 5, 6), 0)
    shape: list[int] = []
    sliced = False
    for field, v in _fields(value, name):
        if field == 2 and isinstance(v, bytes):  # TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}
            for sf, dim in _fields(v, name):
                if sf == 2 and isinstance(dim, bytes):
                    shape.append(next((int(s) for k, s in _fields(dim, name) if k == 1), 0))
                elif sf == 3 and dim:
                    raise ModelError(f"tensor bundle: {name!r} has an unknown rank")
        elif field == 7:
            sliced = True
        elif field in f and isinstance(v, int):
            f[field] = v
    return BundleEntry(f[1], tuple(shape), f[3], f[4], f[5], f[6], sliced)


def _handle(buf: bytes, pos: int, what: str) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos, what)
    size, pos = _varint(buf, pos, what)
    return offset, size, pos


def _block(table: bytes, offset: int, size: int, what: str) -> bytes:
    if offset + size + BLOCK_TRAILER > len(table):
        raise ModelError(f"tensor bundle index: {what} at {offset}+{size} runs past the end ({len(table)} bytes)")
    contents = table[offset : offset + size]
    kind = table[offset + size]
    stored = int.from_bytes(table[offset + size + 1 : offset + size + 5], "little")
    if unmask_crc(stored) != crc32c(table[offset : offset + size + 1]):
        raise ModelError(f"tensor bundle index: {what} fails its checksum (corrupt file)")
    if kind != 0:
        name = {1: "snappy"}.get(kind, f"type {kind}")
        raise ModelError(f"tensor bundle index: {what} is {name}-compressed; only uncompressed blocks are supported")
    return contents


def _block_entries(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise ModelError(f"tensor bundle index: {what} is too short ({len(block)} bytes)")
    n_restarts = int.from_bytes(block[-4:], "little")
    end = len(block) - 4 - 4 * n_restarts
    if end < 0:
        raise ModelError(f"tensor bundle index: {what} claims {n_restarts} restarts in {len(block)} bytes")
    out: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < end:
        shared, pos = _varint(block, pos, what)
        unshared, pos = _varint(block, pos, what)
        vlen, pos = _varint(block, pos, what)
        if shared > len(key) or pos + unshared + vlen > end:
            raise ModelError(f"tensor bundle index: malformed entry in {what}")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out.append((key, block[pos : pos + vlen]))
        pos += vlen
    return out


def _as_bytes(src: bytes | Path | str, what: str) -> bytes:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    try:
        return Path(src).read_bytes()
    except OSError as e:
        raise ModelError(f"{src}: cannot read the tensor bundle's {what} ({e})") from e


def read_index(index: bytes | Path | str) -> dict[str, BundleEntry]:
    """Decode a bundle's ``.index`` SSTable into ``{tensor name: BundleEntry}`` (header checked, not returned)."""
    table = _as_bytes(index, ".index file")
    if len(table) < FOOTER_SIZE:
        raise ModelError(f"tensor bundle index: {len(table)} bytes is shorter than an SSTable footer")
    footer = table[-FOOTER_SIZE:]
    if struct.unpack("<Q", footer[-8:])[0] != TABLE_MAGIC:
        raise ModelError("tensor bundle index: bad SSTable magic number (not a TensorFlow .index, or truncated)")
    _, _, pos = _handle(footer, 0, "footer")  # the metaindex block is empty in bundles
    idx_off, idx_size, _ = _handle(footer, pos, "footer")
    entries: dict[str, BundleEntry] = {}
    header_seen = False
    for _, handle in _block_entries(_block(table, idx_off, idx_size, "index block"), "index block"):
        off, size, _ = _handle(handle, 0, "index block handle")
        for key, value in _block_entries(_block(table, off, size, f"data block at {off}"), f"data block at {off}"):
            if key == b"":
                _check_header(value)
                header_seen = True
                continue
            name = key.decode("utf-8", errors="replace")
            entries[name] = _entry(name, value)
    if not header_seen:
        raise ModelError("tensor bundle index: no BundleHeaderProto (empty key) found")
    return entries


def _check_header(value: bytes) -> None:
    header = dict(_fields(value, "bundle header"))
    if header.get(1, 1) != 1:
        raise ModelError(f"tensor bundle: {header[1]} data shards; only single-shard bundles are supported")
    if header.get(2, 0) != 0:
        raise ModelError("tensor bundle: big-endian data; only little-endian bundles are supported")


def read_bundle(
    index: bytes | Path | str,
    data: bytes | Path | str,
    *,
    skip: Callable[[str], bool] | None = is_optimizer_slot,
    verify: bool = True,
) -> dict[str, np.ndarray]:
    """Read every tensor of a single-shard TensorFlow V2 bundle as numpy arrays.

    Parameters
    ----------
    index, data : bytes or Path
        The ``.index`` SSTable and the ``.data-00000-of-00001`` shard, as file paths or their
        bytes (so that they can be read straight out of a zip such as a wheel).
    skip : callable or None
        Names for which it returns True are not returned (default: optimiser slots such as
        ``*/Adam``, ``*/Adam_1``, ``beta1_power``, ``beta2_power``, ``global_step``).
    verify : bool
        Check every returned tensor's masked CRC32C against the index.

    Returns
    -------
    dict of str to numpy.ndarray
        Tensor name -> array of the recorded shape and dtype (native byte order, writable).

    Raises
    ------
    ModelError
        Truncated or corrupt files, checksum mismatches, and unsupported features (several
        shards, partitioned variables, compressed blocks, string tensors).
    """
    entries = read_index(index)
    blob = _as_bytes(data, "data shard")
    out: dict[str, np.ndarray] = {}
    for name, e in sorted(entries.items()):
        if skip is not None and skip(name):
            continue
        if e.sliced:
            raise ModelError(f"tensor bundle: {name!r} is a partitioned variable (slices are not supported)")
        if e.dtype not in DTYPES:
            raise ModelError(f"tensor bundle: {name!r} has unsupported TensorFlow dtype enum {e.dtype}")
        if e.shard_id != 0:
            raise ModelError(f"tensor bundle: {name!r} is in shard {e.shard_id}; only shard 0 is read")
        dtype = np.dtype(DTYPES[e.dtype])
        count = int(np.prod(e.shape, dtype=np.int64))
        if count * dtype.itemsize != e.size:
            raise ModelError(f"tensor bundle: {name!r} of shape {e.shape} cannot be {e.size} bytes")
        if e.offset + e.size > len(blob):
            raise ModelError(
                f"tensor bundle: {name!r} at bytes {e.offset}..{e.offset + e.size} runs past the end "
                f"of the data shard ({len(blob)} bytes): truncated file"
            )
        raw = blob[e.offset : e.offset + e.size]
        if verify and crc32c(raw) != unmask_crc(e.crc32c):
            raise ModelError(f"tensor bundle: {name!r} fails its CRC32C check (corrupt data shard)")
        out[name] = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(e.shape)
    return out
