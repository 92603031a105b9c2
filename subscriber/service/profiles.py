"""Use cases on device profiles: define (create or replace), get, list and delete.

Scoping as for every carrier resource: the admin for every carrier, ``carrier:<id>``
for its own (PERMISSION_DENIED before anything is read), the playback role for none of
them (it learns a box's profile from ``DeviceLogin``). A change is decided on what was
read and written only if none of it moved meanwhile (``store.profiles``); when it did
(another define took a model, or a profile was added), the change is read and decided
again, so a concurrent change is never merged blindly.
"""

from __future__ import annotations

from dataclasses import replace

from headend.auth import Principal
from subscriber import domain
from subscriber.domain import DeviceProfile
from subscriber.errors import (
    DeviceProfileNotFound,
    ModelInAnotherProfile,
    TooManyDeviceProfiles,
    VersionMismatch,
)
from subscriber.service.base import ServiceBase
from subscriber.store import Audit

# Decisions made again after a concurrent change before the caller is told to retry.
_ATTEMPTS = 5


class ProfileUseCases(ServiceBase):
    """A carrier's device profiles: what its box models play."""

    async def define_device_profile(
        self, principal: Principal, profile: DeviceProfile
    ) -> DeviceProfile:
        """Create or replace a profile; a model another profile names is refused naming
        it, a new profile past the bound is RESOURCE_EXHAUSTED. An unchanged profile is
        not written (its update time stays)."""
        self._not_playback(principal)
        carrier = await self._writable(principal, profile.carrier_id)
        profile = domain.validate_profile(profile)
        for _ in range(_ATTEMPTS):
            read = await self._store.read_profile(carrier, profile.profile_id, profile.models)
            for i, model in enumerate(profile.models):
                owner = read.owners[model]
                if owner not in ("", profile.profile_id):
                    raise ModelInAnotherProfile(
                        f"device_profile.models[{i}] {model!r} is in device profile {owner}",
                        details={"model": model, "profile": owner},
                    )
            before = read.before
            if before is not None and replace(before, updated_at=None) == profile:
                return before
            limit = domain.MAX_PROFILES_PER_CARRIER
            if before is None and read.count >= limit:
                raise TooManyDeviceProfiles(
                    f"carrier {carrier} has {read.count} device profiles, the most allowed",
                    details={"limit": str(limit)},
                )
            now = self._now()
            after = replace(profile, updated_at=now)
            if await self._store.put_profile(
                after,
                read,
                Audit(str(principal), "DefineDeviceProfile"),
                domain.to_json(None if before is None else before.snapshot()),
                domain.to_json(after.snapshot()),
                now,
            ):
                return after
        raise VersionMismatch(f"device profile {profile.profile_id} keeps changing; retry")

    async def get_device_profile(
        self, principal: Principal, carrier_id: str, profile_id: str
    ) -> DeviceProfile:
        """One profile of the caller's carrier."""
        self._not_playback(principal)
        carrier = self._scope(principal, carrier_id)
        return await self._store.get_profile(
            carrier, domain.validate_profile_id(profile_id, "name")
        )

    async def list_device_profiles(
        self, principal: Principal, carrier_id: str
    ) -> list[DeviceProfile]:
        """Every profile of the caller's carrier, by id (at most the bound)."""
        self._not_playback(principal)
        return await self._store.list_profiles(self._scope(principal, carrier_id))

    async def delete_device_profile(
        self, principal: Principal, carrier_id: str, profile_id: str
    ) -> DeviceProfile:
        """Remove a profile and free its models (their boxes fall back to the carrier's
        default profile, else the platform's); returns the removed profile."""
        self._not_playback(principal)
        carrier = await self._writable(principal, carrier_id)
        domain.validate_profile_id(profile_id, "name")
        for _ in range(_ATTEMPTS):
            read = await self._store.read_profile(carrier, profile_id, ())
            if read.before is None:
                raise DeviceProfileNotFound(f"no device profile {profile_id}")
            if await self._store.delete_profile(
                carrier,
                profile_id,
                read,
                Audit(str(principal), "DeleteDeviceProfile"),
                domain.to_json(read.before.snapshot()),
                self._now(),
            ):
                return read.before
        raise VersionMismatch(f"device profile {profile_id} keeps changing; retry")
