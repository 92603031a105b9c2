"""What ``headend demo`` prints for the console: the demo carrier's key, made once and
reused while the services still take it."""

from __future__ import annotations

from pathlib import Path

from headend import seed
from headend.demo import CARRIER_KEY, carrier_key
from headend.local_secrets import save_secrets, saved_secrets
from headend.rpc import bearer, client_channel
from protos import keys_pb2, keys_pb2_grpc
from tests.support.tokens import Tokens


async def _who(target: str, key: str) -> str:
    async with client_channel(target) as channel:
        answer = await keys_pb2_grpc.KeyServiceStub(channel).WhoAmI(
            keys_pb2.WhoAmIRequest(), metadata=bearer(key)
        )
    return answer.principal


async def test_the_demo_carrier_key_is_made_once_and_kept(
    targets: dict[str, str], tokens: Tokens, tmp_path: Path
) -> None:
    target, admin = targets["SUBSCRIBER_TARGET"], await tokens()
    made = await carrier_key(target, admin, "")
    assert await _who(target, made) == f"carrier:{seed.CARRIER}"
    assert await carrier_key(target, admin, made) == made
    # A key of someone else, or one the services no longer take, is replaced.
    for stale in (admin, "hk_0123456789abcdef_" + "A" * 43):
        fresh = await carrier_key(target, admin, stale)
        assert fresh not in (stale, made)
        assert await _who(target, fresh) == f"carrier:{seed.CARRIER}"
    # Kept in secrets.env beside what `headend up` keeps there.
    save_secrets(tmp_path, {"SERVICE_API_KEY": admin})
    save_secrets(tmp_path, {**saved_secrets(tmp_path), CARRIER_KEY: made})
    assert saved_secrets(tmp_path) == {"SERVICE_API_KEY": admin, CARRIER_KEY: made}
    assert (tmp_path / "secrets.env").stat().st_mode & 0o777 == 0o600
