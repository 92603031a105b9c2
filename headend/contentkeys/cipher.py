"""AES-128 whole-segment encryption as HLS defines it (RFC 8216 section 5.2).

A segment is encrypted with AES-128 in CBC mode with PKCS7 padding, whole. Its
IV is the segment's media sequence number as a 128-bit big-endian integer: a
playlist that numbers the segment the same way needs no IV attribute, any other
(a catch-up window numbered from 0) names it with ``IV=0x...`` (:func:`iv_hex`).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_BYTES = 16
_BLOCK_BITS = 128
_BLOCK_BYTES = _BLOCK_BITS // 8


def iv_bytes(sequence: int) -> bytes:
    """The IV of the segment numbered ``sequence`` (RFC 8216: its media sequence number)."""
    if not 0 <= sequence < 2**128:
        raise ValueError(f"sequence {sequence} is not a 128-bit unsigned number")
    return sequence.to_bytes(16, "big")


def iv_hex(sequence: int) -> str:
    """``IV=`` attribute's value for the segment numbered ``sequence``."""
    return "0x" + iv_bytes(sequence).hex()


def _cipher(key: bytes, sequence: int) -> Cipher[modes.CBC]:
    if len(key) != KEY_BYTES:
        raise ValueError(f"an AES-128 content key is {KEY_BYTES} bytes, not {len(key)}")
    return Cipher(algorithms.AES(key), modes.CBC(iv_bytes(sequence)))


def encrypt_segment(data: bytes, key: bytes, sequence: int) -> bytes:
    """``data`` encrypted for ``METHOD=AES-128`` as the segment numbered ``sequence``."""
    # PKCS7 by hand on the last block only: the whole segment goes through the cipher
    # once, into one buffer (a padder copies it all first: a quarter slower).
    encryptor = _cipher(key, sequence).encryptor()
    whole = len(data) - len(data) % _BLOCK_BYTES
    pad = _BLOCK_BYTES - len(data) % _BLOCK_BYTES
    out = bytearray(whole + 2 * _BLOCK_BYTES - 1)  # update_into's room: input + block - 1
    view = memoryview(data)
    done = encryptor.update_into(view[:whole], out)
    done += encryptor.update_into(bytes(view[whole:]) + bytes([pad]) * pad, memoryview(out)[done:])
    encryptor.finalize()
    return bytes(memoryview(out)[:done])


def decrypt_segment(data: bytes, key: bytes, sequence: int) -> bytes:
    """The clear segment; ``ValueError`` when ``data`` was not encrypted with this key and IV."""
    decryptor = _cipher(key, sequence).decryptor()
    clear = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    return unpadder.update(clear) + unpadder.finalize()
