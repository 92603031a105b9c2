"""Signed-URL test vectors shared by the Python signer tests and the njs edge tests.

Each: (secret, exp, kid, ip, scope, signature). The first was also checked
with ``openssl dgst -sha256 -hmac``.
"""

from __future__ import annotations

VECTORS = [
    (
        b"k1-secret-0123456789",
        4102444800,
        "k1",
        "-",
        "live/ch1/",
        "zjsCP0yJlbjy2LBwaus42uMH8Xx3OLW3lofL8lCO9GI",
    ),
    (
        b"k2-secret-abcdefghij",
        4102444800,
        "k2",
        "127.0.0.1",
        "live/ch1/",
        "ajEX_38v-ZTuMOchsC7J0yHhvaf0HJafQMmg9NOEKZ0",
    ),
    (
        b"k2-secret-abcdefghij",
        1700000000,
        "k2",
        "-",
        "live/ch1/",
        "Y5pQow8KQDz5FSbUD4GJsLo77CG0uT-AMG73n6F6BK4",
    ),
    (
        b"k2-secret-abcdefghij",
        4102444800,
        "k2",
        "-",
        "catchup/ch1/720p/",
        "eJ3-i_ThX2_sdet548SohWkh5A_RlEOj3CWxrAyRRsc",
    ),
    # Cut views (also checked with openssl): a live one, open-ended, and a catch-up
    # window's, bound, whose scope is the deepest signed (MAX_SCOPE_DEPTH).
    (
        b"k2-secret-abcdefghij",
        4102444800,
        "k2",
        "-",
        "live/ch1/x/alert.cn/1700000000-0/",
        "HQzNpwvgdWXWu6BUbWOiSH0mheKufL6ErDvejIlHNJw",
    ),
    (
        b"k1-secret-0123456789",
        4102444800,
        "k1",
        "127.0.0.1",
        "catchup/ch1/w/1700000000/1700003600/x/alert.cn/1700000600-1700001200/",
        "Nud5fBclgOdwkzhho3vcBDTEVudbyZDmNGI-M4KntZE",
    ),
]


def vector_path(index: int, rest: str) -> str:
    """``/t/...`` for vector ``index`` followed by ``rest`` (which must lie under its scope)."""
    _, exp, kid, ip, scope, sig = VECTORS[index]
    assert rest.startswith(scope)
    return f"/t/{exp}/{kid}/{ip}/{sig}/{rest}"
