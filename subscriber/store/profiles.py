"""A carrier's device profiles: the profiles, their models and the model index.

Every key carries the carrier's tag (``codec.profiles_key`` and its two siblings), so a
change is one guarded script (``guarded.lua``) in the carrier's slot, on one Redis or a
cluster alike. The script writes the profile, its models and the index entries together,
guarded by what the caller read: the profile's stored values, each named model's index
entry and, for a new profile, the number of profiles. A model another profile took, or
a profile added past the bound, between the read and the write fails a guard and writes
nothing, so "a model in one profile only" and the bound cannot race; the service reads
again and decides again (:meth:`ProfileUseCases.define_device_profile`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from subscriber.domain import DeviceProfile
from subscriber.errors import DeviceProfileNotFound
from subscriber.store.base import Audit, StoreBase, Tx, redis_errors
from subscriber.store.codec import (
    decode_profile,
    model_index_key,
    models_value,
    profile_models_key,
    profile_value,
    profiles_key,
    text,
)


@dataclass(frozen=True, slots=True)
class ProfileRead:
    """What a change to one profile was decided on: the profile as stored (values as
    stored, '' when absent), the carrier's number of profiles and the index entry of
    each model the change names (model -> profile id, '' when no profile names it)."""

    before: DeviceProfile | None
    stored: str
    stored_models: str
    count: int
    owners: dict[str, str]


class ProfileStore(StoreBase):
    """Device profiles, and the guarded writes that keep their model index."""

    @redis_errors
    async def get_profile(self, carrier: str, profile_id: str) -> DeviceProfile:
        """One profile with its models, or ``DeviceProfileNotFound``."""
        read = await self.read_profile(carrier, profile_id, ())
        if read.before is None:
            raise DeviceProfileNotFound(f"no device profile {profile_id}")
        return read.before

    @redis_errors
    async def list_profiles(self, carrier: str) -> list[DeviceProfile]:
        """Every profile of the carrier (at most the bound), by id."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(profiles_key(carrier))
            pipe.hgetall(profile_models_key(carrier))
            values, models = await pipe.execute()
        return [
            decode_profile(carrier, pid.decode(), raw, models.get(pid))
            for pid, raw in sorted(values.items())
        ]

    @redis_errors
    async def read_profile(
        self, carrier: str, profile_id: str, models: Sequence[str]
    ) -> ProfileRead:
        """The profile, the profile count and ``models``' index entries, one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hget(profiles_key(carrier), profile_id)
            pipe.hget(profile_models_key(carrier), profile_id)
            pipe.hlen(profiles_key(carrier))
            if models:
                pipe.hmget(model_index_key(carrier), list(models))
            reply = await pipe.execute()
        stored, stored_models = text(reply[0]), text(reply[1])
        owners = dict(zip(models, (text(o) for o in reply[3]), strict=True)) if models else {}
        before = decode_profile(carrier, profile_id, stored, stored_models) if stored else None
        return ProfileRead(before, stored, stored_models, int(reply[2]), owners)

    def _guard(self, tx: Tx, carrier: str, profile_id: str, read: ProfileRead) -> None:
        """Nothing changed since ``read``: the profile's values and its models' owners."""
        tx.hfield(profiles_key(carrier), profile_id, read.stored, "profile")
        tx.hfield(profile_models_key(carrier), profile_id, read.stored_models, "profile")
        for model, owner in read.owners.items():
            tx.hfield(model_index_key(carrier), model, owner, "model")

    @redis_errors
    async def put_profile(
        self,
        profile: DeviceProfile,
        read: ProfileRead,
        audit: Audit,
        before: str,
        after: str,
        now: datetime,
    ) -> bool:
        """Write ``profile`` with its index entries, if nothing changed since ``read``;
        False when something did (nothing written)."""
        carrier, pid = profile.carrier_id, profile.profile_id
        tx = Tx()
        self._guard(tx, carrier, pid, read)
        if read.before is None:
            tx.hlen(profiles_key(carrier), read.count, "count")
        tx.write("HSET", profiles_key(carrier), pid, profile_value(profile))
        tx.write("HSET", profile_models_key(carrier), pid, models_value(profile.models))
        dropped = set(read.before.models if read.before else ()) - set(profile.models)
        if dropped:
            tx.write("HDEL", model_index_key(carrier), *sorted(dropped))
        if profile.models:
            pairs = [x for model in profile.models for x in (model, pid)]
            tx.write("HSET", model_index_key(carrier), *pairs)
        self._audit(tx, carrier, audit, f"device_profile/{pid}", before, after, now)
        return await self._run(tx) is None

    @redis_errors
    async def delete_profile(
        self,
        carrier: str,
        profile_id: str,
        read: ProfileRead,
        audit: Audit,
        before: str,
        now: datetime,
    ) -> bool:
        """Remove the profile ``read`` found and free its models, if nothing changed since;
        False when something did (nothing written)."""
        tx = Tx()
        self._guard(tx, carrier, profile_id, read)
        tx.write("HDEL", profiles_key(carrier), profile_id)
        tx.write("HDEL", profile_models_key(carrier), profile_id)
        if read.before is not None and read.before.models:
            tx.write("HDEL", model_index_key(carrier), *read.before.models)
        self._audit(tx, carrier, audit, f"device_profile/{profile_id}", before, "", now)
        return await self._run(tx) is None
