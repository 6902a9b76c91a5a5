#!/usr/bin/python3
"""An independent reader of the dcpp native checkpoint format, written from
docs/format.md alone (Python standard library + numpy; zstandard for the
encoded blocks of format version 2).

    independent_reader.py <checkpoint-dir> [<dump-dir>]

Parses dcpp.metadata, verifies its trailing XXH3-64 self-checksum and every
data block's XXH3-64 (a pure-Python XXH3-64, seed 0, default secret), then
assembles every tensor from its chunks. With a dump directory (manifest.txt
lines "<key> <dtype> <file.npy>"), compares each assembled tensor byte for
byte with the dumped one and fails on any difference or missing key.
"""

import os
import struct
import sys

import numpy as np

M64 = (1 << 64) - 1

# ---------------------------------------------------------------- XXH3-64
# xxHash 0.8 XXH3_64bits with seed 0 and the default 192-byte secret.

SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364"
    "eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e"
    "2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e"
)
assert len(SECRET) == 192

P32_1 = 0x9E3779B1
P32_2 = 0x85EBCA77
P32_3 = 0xC2B2AE3D
P64_1 = 0x9E3779B185EBCA87
P64_2 = 0xC2B2AE3D27D4EB4F
P64_3 = 0x165667B19E3779F9
P64_4 = 0x85EBCA77C2B2AE63
P64_5 = 0x27D4EB2F165667C5


def _r64(b, i):
    return int.from_bytes(b[i:i + 8], "little")


def _r32(b, i):
    return int.from_bytes(b[i:i + 4], "little")


def _rotl64(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _swap64(x):
    return int.from_bytes(x.to_bytes(8, "little"), "big")


def _mul128_fold64(a, b):
    p = a * b
    return (p & M64) ^ (p >> 64)


def _xxh64_avalanche(h):
    h ^= h >> 33
    h = (h * P64_2) & M64
    h ^= h >> 29
    h = (h * P64_3) & M64
    h ^= h >> 32
    return h


def _avalanche(h):
    h ^= h >> 37
    h = (h * 0x165667919E3779F9) & M64
    h ^= h >> 32
    return h


def _rrmxmx(h, length):
    h ^= _rotl64(h, 49) ^ _rotl64(h, 24)
    h = (h * 0x9FB21C651E98DF25) & M64
    h ^= (h >> 35) + length
    h = (h * 0x9FB21C651E98DF25) & M64
    h ^= h >> 28
    return h


def _mix16(data, i, s):
    lo = _r64(data, i) ^ _r64(SECRET, s)
    hi = _r64(data, i + 8) ^ _r64(SECRET, s + 8)
    return _mul128_fold64(lo, hi)


# Secret words for the long-input accumulation, as a numpy matrix: stripe s
# of a block uses the 8 words starting at secret byte 8*s.
_SECRET_WORDS = np.frombuffer(SECRET, dtype="<u8")
_STRIPE_KEYS = np.stack([_SECRET_WORDS[s:s + 8] for s in range(16)])  # 16 stripes per block
_SWAP = np.array([1, 0, 3, 2, 5, 4, 7, 6])
_LO32 = np.uint64(0xFFFFFFFF)
_SH32 = np.uint64(32)


def _accumulate(acc, data, offset, nstripes):
    """XXH3_accumulate over nstripes 64-byte stripes, vectorised: within a
    block the accumulators only add, so the stripes can be summed at once."""
    if nstripes == 0:
        return acc
    words = np.frombuffer(data, dtype="<u8", count=8 * nstripes, offset=offset).reshape(nstripes, 8)
    keyed = words ^ _STRIPE_KEYS[:nstripes]
    with np.errstate(over="ignore"):
        prod = (keyed & _LO32) * (keyed >> _SH32)
        acc = acc + prod.sum(axis=0, dtype=np.uint64) + words[:, _SWAP].sum(axis=0, dtype=np.uint64)
    return acc


def _accumulate_512_scalar(acc, data, i, s):
    for lane in range(8):
        v = _r64(data, i + 8 * lane)
        k = v ^ _r64(SECRET, s + 8 * lane)
        acc[lane ^ 1] = (acc[lane ^ 1] + v) & M64
        acc[lane] = (acc[lane] + (k & 0xFFFFFFFF) * (k >> 32)) & M64


def _hash_long(data):
    n = len(data)
    acc = np.array([P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1], dtype=np.uint64)
    block_len = 1024  # 64 * (192 - 64) / 8
    nb_blocks = (n - 1) // block_len
    for b in range(nb_blocks):
        acc = _accumulate(acc, data, b * block_len, 16)
        # scramble
        a = [int(x) for x in acc]
        for lane in range(8):
            v = a[lane]
            v ^= v >> 47
            v ^= _r64(SECRET, 128 + 8 * lane)
            a[lane] = (v * P32_1) & M64
        acc = np.array(a, dtype=np.uint64)
    nstripes = ((n - 1) - block_len * nb_blocks) // 64
    acc = _accumulate(acc, data, nb_blocks * block_len, nstripes)
    a = [int(x) for x in acc]
    _accumulate_512_scalar(a, data, n - 64, 192 - 64 - 7)
    result = (n * P64_1) & M64
    for i in range(4):
        result = (result + _mul128_fold64(a[2 * i] ^ _r64(SECRET, 11 + 16 * i),
                                          a[2 * i + 1] ^ _r64(SECRET, 11 + 16 * i + 8))) & M64
    return _avalanche(result)


def xxh3_64(data):
    data = bytes(data)
    n = len(data)
    if n == 0:
        return _xxh64_avalanche(_r64(SECRET, 56) ^ _r64(SECRET, 64))
    if n <= 3:
        c1, c2, c3 = data[0], data[n >> 1], data[n - 1]
        combined = (c1 << 16) | (c2 << 24) | c3 | (n << 8)
        bitflip = _r32(SECRET, 0) ^ _r32(SECRET, 4)
        return _xxh64_avalanche(combined ^ bitflip)
    if n <= 8:
        in1 = _r32(data, 0)
        in2 = _r32(data, n - 4)
        bitflip = _r64(SECRET, 8) ^ _r64(SECRET, 16)
        return _rrmxmx(((in2 + (in1 << 32)) & M64) ^ bitflip, n)
    if n <= 16:
        lo = _r64(data, 0) ^ (_r64(SECRET, 24) ^ _r64(SECRET, 32))
        hi = _r64(data, n - 8) ^ (_r64(SECRET, 40) ^ _r64(SECRET, 48))
        acc = (n + _swap64(lo) + hi + _mul128_fold64(lo, hi)) & M64
        return _avalanche(acc)
    if n <= 128:
        acc = (n * P64_1) & M64
        if n > 32:
            if n > 64:
                if n > 96:
                    acc += _mix16(data, 48, 96) + _mix16(data, n - 64, 112)
                acc += _mix16(data, 32, 64) + _mix16(data, n - 48, 80)
            acc += _mix16(data, 16, 32) + _mix16(data, n - 32, 48)
        acc += _mix16(data, 0, 0) + _mix16(data, n - 16, 16)
        return _avalanche(acc & M64)
    if n <= 240:
        acc = (n * P64_1) & M64
        for i in range(8):
            acc += _mix16(data, 16 * i, 16 * i)
        acc = _avalanche(acc & M64)
        for i in range(8, n // 16):
            acc += _mix16(data, 16 * i, 16 * (i - 8) + 3)
        acc += _mix16(data, n - 16, 136 - 17)
        return _avalanche(acc & M64)
    return _hash_long(data)


# ---------------------------------------------------------------- format

MAGIC = b"DCPPMETA"
MAX_VERSION = 2
NO_FILE = 0xFFFFFFFF

# code -> (name, element size, numpy dtype for the raw bytes)
DTYPES = {
    0: ("float32", 4, "<f4"),
    1: ("float64", 8, "<f8"),
    2: ("float16", 2, "<f2"),
    3: ("bfloat16", 2, "<u2"),
    4: ("int8", 1, "|i1"),
    5: ("int16", 2, "<i2"),
    6: ("int32", 4, "<i4"),
    7: ("int64", 8, "<i8"),
    8: ("uint8", 1, "|u1"),
    9: ("bool", 1, "|b1"),
    10: ("float8_e4m3fn", 1, "|u1"),
    11: ("float8_e5m2", 1, "|u1"),
}
VALUE_KINDS = {0: "int64", 1: "double", 2: "bool", 3: "string", 4: "bytes"}


class FormatError(Exception):
    pass


class Cursor:
    def __init__(self, buf, end):
        self.buf, self.pos, self.end = buf, 0, end

    def take(self, n, what):
        if n > self.end - self.pos:
            raise FormatError("truncated %s at byte offset %d" % (what, self.pos))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self, what):
        return self.take(1, what)[0]

    def u32(self, what):
        return struct.unpack("<I", self.take(4, what))[0]

    def i32(self, what):
        return struct.unpack("<i", self.take(4, what))[0]

    def u64(self, what):
        return struct.unpack("<Q", self.take(8, what))[0]

    def i64(self, what):
        return struct.unpack("<q", self.take(8, what))[0]

    def i64s(self, n, what):
        return list(struct.unpack("<%dq" % n, self.take(8 * n, what)))

    def string(self, what):
        n = self.u32(what + " length")
        return self.take(n, what).decode("utf-8")


def check_file_name(key, name, version=1):
    if version >= 2 and name.startswith("../"):
        # A reference into a sibling checkpoint: ../<checkpoint>/<plain name>.
        parts = name.split("/")
        if len(parts) < 3 or not parts[1] or parts[1].startswith("."):
            raise FormatError("key %r names an unsafe data file %r" % (key, name))
        name = "/".join(parts[2:])
    parts = name.split("/")
    if (not name or name.startswith("/") or "\0" in name
            or any(p in ("", ".", "..") for p in parts)):
        raise FormatError("key %r names an unsafe data file %r" % (key, name))


def parse_metadata(buf):
    if len(buf) < 20 or buf[:8] != MAGIC:
        raise FormatError("not dcpp metadata (short file or bad magic)")
    stored = struct.unpack("<Q", buf[-8:])[0]
    computed = xxh3_64(buf[:-8])
    if stored != computed:
        raise FormatError("metadata checksum mismatch: stored %016x computed %016x" % (stored, computed))
    version = struct.unpack("<I", buf[8:12])[0]
    if version > MAX_VERSION:
        raise FormatError("checkpoint format version %d is newer than this reader supports (max %d)"
                          % (version, MAX_VERSION))
    c = Cursor(buf, len(buf) - 8)
    c.pos = 12
    md = {"format_version": version}
    md["format"] = c.string("format")
    md["dcpp_version"] = c.string("dcpp_version")
    md["world_size"] = c.i32("world_size")
    md["block_size"] = block = c.u64("block_size")
    if block == 0:
        raise FormatError("block size 0")
    files = [c.string("file name") for _ in range(c.u32("file_count"))]

    def location(key):
        index = c.u32("file_index")
        off = c.u64("byte_offset")
        length = c.u64("byte_length")
        nblocks = (length + block - 1) // block
        sums = list(struct.unpack("<%dQ" % nblocks, c.take(8 * nblocks, "block checksums")))
        if index == NO_FILE:
            if length:
                raise FormatError("key %r has bytes but no file" % key)
            name = None
        else:
            name = files[index]
            check_file_name(key, name, version)
        stored = None
        if version >= 2:
            flags = c.u8("location flags")
            if flags & ~3:
                raise FormatError("key %r: unknown location flags %d" % (key, flags))
            if flags & 1:
                stored = []
                for k in range(nblocks):
                    enc = c.u8("block encoding")
                    boff = c.u64("block offset")
                    blen = c.u64("block stored length")
                    decoded = min(block, length - k * block)
                    if enc not in (0, 1):
                        raise FormatError("key %r block %d: unknown encoding %d" % (key, k, enc))
                    if (enc == 0 and blen != decoded) or blen == 0:
                        raise FormatError("key %r block %d: bad stored length %d" % (key, k, blen))
                    if (k == 0 and boff != 0) or (stored and boff < stored[-1][1] + stored[-1][2]):
                        raise FormatError("key %r block %d: bad stored offset %d" % (key, k, boff))
                    stored.append((enc, boff, blen))
            if flags & 2:
                c.take(16, "content hash")  # XXH3-128 of the item; not needed to read it
        return {"file": name, "offset": off, "length": length, "checksums": sums, "stored": stored}

    tensors = {}
    for _ in range(c.u64("tensor_count")):
        key = c.string("tensor key")
        code = c.u8("dtype")
        if code not in DTYPES:
            raise FormatError("key %r: unknown dtype code %d" % (key, code))
        ndim = c.u32("ndim")
        shape = c.i64s(ndim, "global_shape")
        chunks = []
        for _ in range(c.u64("chunk_count")):
            offsets = c.i64s(ndim, "offsets")
            sizes = c.i64s(ndim, "sizes")
            loc = location(key)
            if loc["length"] != int(np.prod(sizes, dtype=np.int64)) * DTYPES[code][1]:
                raise FormatError("key %r: chunk byte length disagrees with its sizes" % key)
            chunks.append({"offsets": offsets, "sizes": sizes, "location": loc})
        tensors[key] = {"dtype": code, "shape": shape, "chunks": chunks}
    values = {}
    for _ in range(c.u64("value_count")):
        key = c.string("value key")
        kind = c.u8("kind")
        values[key] = {"kind": VALUE_KINDS[kind], "location": location(key)}
    paths = {}
    for _ in range(c.u64("path_count")):
        key = c.string("path key")
        elems = []
        for _ in range(c.u32("element_count")):
            tag = c.u8("tag")
            elems.append(c.string("path key") if tag == 0 else c.i64("path index"))
        paths[key] = elems
    if c.pos != c.end:
        raise FormatError("%d unexpected bytes before the checksum" % (c.end - c.pos))
    md.update(tensors=tensors, values=values, paths=paths)
    return md


def decode_grouped(enc, n, key, where):
    """Encoding 1: a group table, then the byte groups (raw or one zstd frame
    each); byte i of the block is byte i // G of group i % G."""
    import zstandard
    if not enc or not 1 <= enc[0] <= 8:
        raise FormatError("key %r: bad group count at %s" % (key, where))
    g = enc[0]
    pos = 1 + 5 * g
    if len(enc) < pos:
        raise FormatError("key %r: truncated group table at %s" % (key, where))
    out = bytearray(n)
    for j in range(g):
        mode = enc[1 + 5 * j]
        length = struct.unpack("<I", enc[2 + 5 * j:6 + 5 * j])[0]
        size = (n - j + g - 1) // g if n > j else 0
        body = enc[pos:pos + length]
        if len(body) != length:
            raise FormatError("key %r: group %d runs past its block at %s" % (key, j, where))
        if mode == 0:
            group = body
        elif mode == 1:
            group = zstandard.ZstdDecompressor().decompress(body, max_output_size=size)
        else:
            raise FormatError("key %r: unknown group mode %d at %s" % (key, mode, where))
        if len(group) != size:
            raise FormatError("key %r: group %d holds %d bytes, expected %d, at %s" % (key, j, len(group), size, where))
        out[j::g] = group
        pos += length
    if pos != len(enc):
        raise FormatError("key %r: trailing bytes in encoded block at %s" % (key, where))
    return bytes(out)


def read_item(ckpt, loc, block, key):
    """The item's bytes (decoded), each block verified against its checksum."""
    if loc["length"] == 0:
        return b""
    if loc["offset"] % 4096:
        raise FormatError("key %r: item offset %d is not 4096-aligned" % (key, loc["offset"]))
    stored = loc["stored"]
    with open(os.path.join(ckpt, loc["file"]), "rb") as f:
        f.seek(loc["offset"])
        span = loc["length"] if stored is None else stored[-1][1] + stored[-1][2]
        data = f.read(span)
    if len(data) != span:
        raise FormatError("key %r: data file %s is too short" % (key, loc["file"]))
    if stored is not None:
        pieces = []
        for k, (enc, boff, blen) in enumerate(stored):
            n = min(block, loc["length"] - k * block)
            body = data[boff:boff + blen]
            where = "%s byte offset %d" % (loc["file"], loc["offset"] + boff)
            pieces.append(body if enc == 0 else decode_grouped(body, n, key, where))
        data = b"".join(pieces)
    for k, expected in enumerate(loc["checksums"]):
        got = xxh3_64(data[k * block:(k + 1) * block])
        if got != expected:
            raise FormatError("key %r: checksum mismatch in %s at byte offset %d"
                              % (key, loc["file"], loc["offset"] + k * block))
    return data


def assemble(ckpt, md, key):
    t = md["tensors"][key]
    name, size, npdtype = DTYPES[t["dtype"]]
    out = np.zeros(t["shape"], dtype=npdtype)
    covered = np.zeros(t["shape"], dtype=bool)
    for ch in t["chunks"]:
        raw = read_item(ckpt, ch["location"], md["block_size"], key)
        piece = np.frombuffer(raw, dtype=npdtype).reshape(ch["sizes"])
        box = tuple(slice(o, o + s) for o, s in zip(ch["offsets"], ch["sizes"]))
        out[box] = piece
        covered[box] = True
    if not covered.all():
        raise FormatError("key %r: chunks do not cover the tensor" % key)
    return out


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__)
        return 2
    ckpt = argv[1]
    with open(os.path.join(ckpt, "dcpp.metadata"), "rb") as f:
        md = parse_metadata(f.read())
    print("format %s v%d written by dcpp %s, world size %d, block size %d; metadata checksum verified (XXH3-64)"
          % (md["format"], md["format_version"], md["dcpp_version"], md["world_size"], md["block_size"]))
    assembled = {key: assemble(ckpt, md, key) for key in md["tensors"]}
    for key, v in md["values"].items():
        read_item(ckpt, v["location"], md["block_size"], key)
    nblocks = sum(len(c["location"]["checksums"]) for t in md["tensors"].values() for c in t["chunks"])
    nencoded = sum(1 for t in md["tensors"].values() for c in t["chunks"]
                   for b in (c["location"]["stored"] or []) if b[0] == 1)
    if nencoded:
        print("%d blocks stored encoded (byte groups + zstd), decoded and verified" % nencoded)
    print("%d tensors, %d values; %d data blocks verified (XXH3-64)" % (len(assembled), len(md["values"]), nblocks))
    if len(argv) == 2:
        return 0
    failures = 0
    seen = set()
    with open(os.path.join(argv[2], "manifest.txt")) as manifest:
        for line in manifest:
            key, dtype, fname = line.split()
            seen.add(key)
            expected = np.load(os.path.join(argv[2], fname))
            if key not in assembled:
                print("MISSING %s" % key)
                failures += 1
                continue
            got = assembled[key]
            name = DTYPES[md["tensors"][key]["dtype"]][0]
            if name != dtype or list(got.shape) != list(expected.shape) or got.tobytes() != expected.tobytes():
                print("DIFFERENT %s: %s %s vs dump %s %s" % (key, name, got.shape, dtype, expected.shape))
                failures += 1
            else:
                print("ok %-28s %-14s %s" % (key, name, list(got.shape)))
    extra = set(assembled) - seen
    if extra:
        print("UNEXPECTED keys in checkpoint: %s" % sorted(extra))
        failures += 1
    if failures:
        print("FAILED: %d tensors differ" % failures)
        return 1
    print("all %d tensors match the dump byte for byte" % len(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
