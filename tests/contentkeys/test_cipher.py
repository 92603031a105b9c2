"""AES-128 segment encryption, checked against an independent implementation: openssl enc."""

from __future__ import annotations

import os
import subprocess

import pytest

from headend.contentkeys.cipher import decrypt_segment, encrypt_segment, iv_bytes, iv_hex


def _openssl(data: bytes, key: bytes, sequence: int) -> bytes:
    command = ["openssl", "enc", "-aes-128-cbc", "-K", key.hex(), "-iv", iv_bytes(sequence).hex()]
    return subprocess.run(command, input=data, capture_output=True, check=True).stdout


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 188 * 1000 + 3])
def test_a_segment_encrypts_as_openssl_does_and_decrypts_back(size: int) -> None:
    data, key = os.urandom(size), os.urandom(16)
    encrypted = encrypt_segment(data, key, 4711)
    assert encrypted == _openssl(data, key, 4711)
    assert decrypt_segment(encrypted, key, 4711) == data


def test_the_iv_is_the_sequence_number_big_endian() -> None:
    assert iv_bytes(1) == bytes(15) + b"\x01"
    assert iv_hex(258) == "0x" + "0" * 28 + "0102"
    with pytest.raises(ValueError, match="128-bit"):
        iv_bytes(-1)


def test_a_wrong_key_or_short_key_is_refused() -> None:
    key = os.urandom(16)
    encrypted = encrypt_segment(b"x" * 100, key, 1)
    with pytest.raises(ValueError, match="16 bytes"):
        encrypt_segment(b"x", b"short", 1)
    # A wrong key garbles the padding (almost always): never the clear text.
    try:
        clear = decrypt_segment(encrypted, bytes(16), 1)
    except ValueError:
        return
    assert clear != b"x" * 100
