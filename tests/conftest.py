"""Shared fixtures: a real redis-server per session, a clean database per test.

``TEST_REDIS=cluster`` gives every test's ``redis`` client a real three-master Redis
Cluster instead (``make test-cluster`` runs the store suites so): a store that keeps
the keys of each script and transaction under one hash tag passes unchanged there.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.redisconn import connect
from headend.redisproc import RedisServer
from tests.support.redisha import ClusterSet
from tests.support.tokens import Tokens

CLUSTER = os.environ.get("TEST_REDIS", "") == "cluster"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on a Unix socket for the whole session."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSet | None]:
    """With ``TEST_REDIS=cluster``, a three-master Redis Cluster for the session."""
    if not CLUSTER:
        yield None
        return
    cluster = ClusterSet(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def redis(
    redis_server: RedisServer, redis_cluster: ClusterSet | None
) -> AsyncIterator[aioredis.Redis]:
    """A client on an empty database (the cluster's, with ``TEST_REDIS=cluster``); flushed
    before each test."""
    if redis_cluster is not None:
        client = connect(redis_cluster.url)
    else:
        client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def keys(redis: aioredis.Redis) -> KeyStore:
    """The API key store on the test database."""
    return KeyStore(redis)


@pytest.fixture
def tokens(keys: KeyStore) -> Tokens:
    """``await tokens("carrier:acme")`` -> a bearer token for that principal."""
    return Tokens(keys)


@pytest.fixture(scope="session")
def dtd_path() -> Path:
    """The XMLTV reference DTD every guide export must validate against: Debian's
    ``xmltv-util`` (installed by ``make test``), or ``XMLTV_DTD``."""
    path = Path(os.environ.get("XMLTV_DTD", "/usr/share/xmltv/xmltv.dtd"))
    assert path.is_file(), f"XMLTV DTD not found at {path}: apt-get install xmltv-util"
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top folder."""
    return Path(__file__).resolve().parent.parent
