#!/usr/bin/env python3
"""Decrypt a .bscc archive as a stream and describe what it holds.

Used by scripts/bench-backup.sh to learn the exact size of the dump part
inside an archive, and by the format's vector tests as a second, independent
reader. It follows docs/FORMAT.md (sections 3 to 6), reads format versions 1
and 2, and needs the `cryptography` package and, for zstd parts of version 2,
`zstandard` (scripts/ensure-deps.sh installs both into a venv). Unlike the
sketch in FORMAT.md section 12 it holds one chunk in memory at a time, so it
reads archives of any size.

    BSCC_KEY=<base64 master key> python3 bscc_parts.py ARCHIVE

The key is taken from the environment, never from the command line (other
users can read command lines). Prints one JSON object:

    {"file_size", "format_version", "chunk_size", "chunks", "plaintext_size",
     "parts": [{"name", "codec", "stored_size", "size", "blocks", "sha256"}, ...],
     "manifest": {...}}

"size" and "sha256" are of the part's content (decompressed), "stored_size"
what its blocks hold.

Exits non-zero, with a message, on anything that does not check out.
"""

import base64
import binascii
import hashlib
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"\x89BSCC\r\n\x1a"
CODECS = {0: "none", 1: "zstd"}
MAX_WINDOW = 1 << 23
HEADER_LEN = 112
TAG_LEN = 16


def parse_key(text):
    text = text.strip()
    if len(text) == 64:
        return bytes.fromhex(text)
    key = base64.b64decode(text, validate=True)
    if len(key) != 32:
        raise SystemExit("BSCC_KEY is not a 32-byte key")
    return key


class Plaintext:
    """The decrypted payload as a stream, produced chunk by chunk."""

    def __init__(self, f, master_key):
        h = f.read(HEADER_LEN)
        if len(h) < 8 or h[:8] != MAGIC:
            raise SystemExit("not a .bscc archive")
        if len(h) < HEADER_LEN:
            raise SystemExit("truncated header")
        version, flags, chunk_size = struct.unpack(">HHI", h[8:16])
        if version not in (1, 2) or flags != 0 or not 4096 <= chunk_size <= 16 << 20:
            raise SystemExit(f"unsupported header: version {version}, flags {flags}, chunk size {chunk_size}")
        key_id = hashlib.sha256(b"berkut-bscc-key-id-v1" + master_key).digest()[:8]
        if h[16:24] != key_id:
            raise SystemExit("the archive needs key " + h[16:24].hex())
        kek = HKDF(hashes.SHA256(), 32, h[24:56], b"berkut-bscc-v1 key-wrap").derive(master_key)
        data_key = ChaCha20Poly1305(kek).decrypt(bytes(12), h[64:112], h[:64])
        self.version = version
        self.f = f
        self.aead = ChaCha20Poly1305(data_key)
        self.prefix = h[56:63]
        self.chunk_size = chunk_size
        self.index = 0
        self.done = False
        self.buf = b""
        self.pos = 0
        self.total = 0

    def _next_chunk(self):
        if self.done:
            raise SystemExit("malformed: the payload ends early")
        chunk = self.f.read(self.chunk_size + TAG_LEN)
        if len(chunk) < TAG_LEN:
            raise SystemExit("truncated")
        last = len(chunk) < self.chunk_size + TAG_LEN
        nonce = self.prefix + struct.pack(">I", self.index) + bytes([last])
        try:
            self.buf = self.aead.decrypt(nonce, chunk, b"")
        except Exception:
            raise SystemExit(f"chunk {self.index} failed to authenticate")
        self.pos = 0
        self.total += len(self.buf)
        self.index += 1
        self.done = last

    def read(self, n, sink):
        """Feeds the next n bytes of plaintext to sink(bytes), piece by piece."""
        while n > 0:
            if self.pos == len(self.buf):
                self._next_chunk()
                continue
            take = min(n, len(self.buf) - self.pos)
            sink(self.buf[self.pos:self.pos + take])
            self.pos += take
            n -= take

    def read_bytes(self, n):
        parts = []
        self.read(n, parts.append)
        return b"".join(parts)

    def at_end(self):
        return self.done and self.pos == len(self.buf) and not self.f.read(1)


class Content:
    """A part's content as its stored bytes arrive: decompressed (one zstd
    frame after another, the window bounded) when the codec is zstd, then
    counted and hashed."""

    def __init__(self, codec, name):
        self.codec, self.name = codec, name
        self.size = 0
        self.digest = hashlib.sha256()
        self.frame = None
        self.in_frame = False
        self.frames = 0

    def _out(self, data, keep):
        self.size += len(data)
        self.digest.update(data)
        if keep is not None:
            keep.append(data)

    def feed(self, piece, keep):
        if self.codec == "none":
            self._out(piece, keep)
            return
        import zstandard
        while piece:
            if self.frame is None:
                self.frame = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).decompressobj()
            self.in_frame = True
            try:
                self._out(self.frame.decompress(piece), keep)
            except zstandard.ZstdError as e:
                raise SystemExit(f"part {self.name} does not decompress: {e}")
            if self.frame.eof:
                # The frame ended: whatever follows starts the next one.
                piece = self.frame.unused_data
                self.frame, self.in_frame = None, False
                self.frames += 1
            else:
                piece = b""

    def end(self, keep):
        if self.codec == "zstd" and (self.in_frame or self.frames == 0):
            raise SystemExit(f"part {self.name}: its stored bytes end inside a zstd frame")


def main():
    if len(sys.argv) != 2 or "BSCC_KEY" not in os.environ:
        raise SystemExit("usage: BSCC_KEY=<base64 key> bscc_parts.py ARCHIVE")
    try:
        master_key = parse_key(os.environ["BSCC_KEY"])
    except (ValueError, binascii.Error):
        raise SystemExit("BSCC_KEY is not base64 or hex")
    path = sys.argv[1]
    parts = []
    manifest_bytes = None
    with open(path, "rb", buffering=0) as f:
        p = Plaintext(f, master_key)
        while True:
            tag = p.read_bytes(1)[0]
            if tag == 0xFF:
                break
            if tag != 0x01:
                raise SystemExit(f"malformed: record tag {tag:#x}")
            (name_len,) = struct.unpack(">H", p.read_bytes(2))
            name = p.read_bytes(name_len).decode()
            codec = "none"
            if p.version >= 2:
                codec_id = p.read_bytes(1)[0]
                if codec_id not in CODECS:
                    raise SystemExit(f"part {name} uses unknown codec id {codec_id}")
                codec = CODECS[codec_id]
            content = Content(codec, name)
            keep = [] if name == "manifest.json" else None
            stored = blocks = 0
            while True:
                (blen,) = struct.unpack(">I", p.read_bytes(4))
                if blen == 0:
                    break
                blocks += 1
                stored += blen
                p.read(blen, lambda piece: content.feed(piece, keep))
            content.end(keep)
            if p.version >= 2:
                (stated_stored,) = struct.unpack(">Q", p.read_bytes(8))
                if stated_stored != stored or (codec == "none" and stored != content.size):
                    raise SystemExit(f"malformed: stored size of part {name}")
            (stated,) = struct.unpack(">Q", p.read_bytes(8))
            stated_digest = p.read_bytes(32)
            if stated != content.size or stated_digest != content.digest.digest():
                raise SystemExit(f"digest mismatch in part {name}")
            parts.append({"name": name, "codec": codec, "stored_size": stored, "size": content.size,
                          "blocks": blocks, "sha256": content.digest.hexdigest()})
            if keep is not None:
                manifest_bytes = b"".join(keep)
        if not p.at_end():
            raise SystemExit("malformed: data after the end marker")
        chunks, plaintext = p.index, p.total
    if manifest_bytes is None or parts[-1]["name"] != "manifest.json":
        raise SystemExit("malformed: no manifest at the end")
    manifest = json.loads(manifest_bytes)
    def row(e, codec, stored):
        return (e["name"], e["size"], e["sha256"], codec, stored)
    v2 = p.version >= 2
    listed = [row(e, e.get("codec"), e.get("compressed_size")) for e in manifest.get("parts", [])]
    found = [row(e, e["codec"] if v2 else None, e["stored_size"] if v2 else None) for e in parts[:-1]]
    if listed != found:
        raise SystemExit("manifest mismatch: the manifest does not list the parts found")
    print(json.dumps({
        "file_size": os.path.getsize(path),
        "format_version": p.version,
        "chunk_size": p.chunk_size,
        "chunks": chunks,
        "plaintext_size": plaintext,
        "parts": parts,
        "manifest": manifest,
    }))


if __name__ == "__main__":
    main()
