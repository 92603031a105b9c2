"""Requests per second from ``wrk``, for the benchmarks that load an HTTP face with it."""

from __future__ import annotations

import asyncio
import re


async def wrk_rate(url: str, headers: dict[str, str], seconds: int) -> float:
    """``url``'s requests per second under one ``wrk`` thread with 16 connections; every
    answer must be 2xx or 3xx (a refusal would measure the refusal, not the path)."""
    args = ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency"]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    proc = await asyncio.create_subprocess_exec(
        *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    found = re.search(r"Requests/sec:\s+([0-9.]+)", out.decode())
    assert found, out.decode()
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out.decode())
    assert non2xx is None, out.decode()
    return float(found.group(1))
