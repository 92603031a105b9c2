"""The device profile RPCs (``DefineDeviceProfile``, ``GetDeviceProfile``,
``ListDeviceProfiles``, ``DeleteDeviceProfile``): proto <-> domain only.

Mixed into ``SubscriberServicer``; the mutating two are idempotent by their
``idempotency_key`` and record a refused request for the carrier's helpdesk, as every
provisioning RPC does. A carrier's profiles are few (bounded), so the list is paged here.
"""

from __future__ import annotations

from typing import TypeAlias

import grpc

from headend.rpc import principal
from headend.rpc.resources import page
from protos import subscriber_pb2 as pb
from subscriber.convert import CARRIER
from subscriber.convert_profiles import DEVICE_PROFILE, device_profile, device_profile_from_pb
from subscriber.server.base import ServicerBase
from subscriber.server.helpdesk import records_refusals

Context: TypeAlias = grpc.aio.ServicerContext


class ProfileServicer(ServicerBase):
    """The device profile RPCs; mixed into ``SubscriberServicer``."""

    @records_refusals
    async def DefineDeviceProfile(
        self, request: pb.DefineDeviceProfileRequest, context: Context
    ) -> pb.DeviceProfile:
        profile = device_profile_from_pb(request.device_profile)

        async def run() -> pb.DeviceProfile:
            return device_profile(await self._service.define_device_profile(principal(), profile))

        return await self._once(
            "DefineDeviceProfile", request, request.idempotency_key, pb.DeviceProfile, run
        )

    async def GetDeviceProfile(
        self, request: pb.GetDeviceProfileRequest, context: Context
    ) -> pb.DeviceProfile:
        carrier_id, profile_id = DEVICE_PROFILE.parse(request.name)
        return device_profile(
            await self._service.get_device_profile(principal(), carrier_id, profile_id)
        )

    async def ListDeviceProfiles(
        self, request: pb.ListDeviceProfilesRequest, context: Context
    ) -> pb.ListDeviceProfilesResponse:
        carrier_id = CARRIER.id(request.parent, field="parent")
        profiles, token = page(
            await self._service.list_device_profiles(principal(), carrier_id),
            key=lambda p: p.profile_id,
            size=request.page_size,
            token=request.page_token,
            query=request.parent,
        )
        return pb.ListDeviceProfilesResponse(
            device_profiles=[device_profile(p) for p in profiles], next_page_token=token
        )

    @records_refusals
    async def DeleteDeviceProfile(
        self, request: pb.DeleteDeviceProfileRequest, context: Context
    ) -> pb.DeviceProfile:
        carrier_id, profile_id = DEVICE_PROFILE.parse(request.name)

        async def run() -> pb.DeviceProfile:
            return device_profile(
                await self._service.delete_device_profile(principal(), carrier_id, profile_id)
            )

        return await self._once(
            "DeleteDeviceProfile", request, request.idempotency_key, pb.DeviceProfile, run
        )
