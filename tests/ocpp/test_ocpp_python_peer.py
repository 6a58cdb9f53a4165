"""A second, independent OCPP 1.6J peer (issue 12): the `ocpp` package's own ChargePoint
(mobilityhouse; the server uses its central-system side, this test its charge-point side) over a
real websockets client runs a whole session against the real server: billed = register delta."""

from __future__ import annotations

import asyncio
from base64 import b64encode

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, ChargePointErrorCode, ChargePointStatus, TriggerMessageStatus
from websockets.asyncio.client import connect as ws_connect

from tests.live_server import base_url, connect, server_clock
from tests.ocpp.charge_point import TIMEOUT, iso
from tests.ocpp.test_ocpp_endpoint import BOOT, CARD, CP_ID, next_of, ocpp_server  # noqa: F401


class Wallbox(ChargePoint):
    """A charge point that answers TriggerMessage(StatusNotification) by sending its status."""

    status = ChargePointStatus.available
    triggered = 0

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, connector_id: int | None = None):
        self.triggered += 1
        asyncio.get_running_loop().create_task(
            self.call(
                call.StatusNotification(
                    connector_id=connector_id or 1,
                    error_code=ChargePointErrorCode.no_error,
                    status=self.status,
                )
            )
        )
        return call_result.TriggerMessage(status=TriggerMessageStatus.accepted)


def register(wh: float, w: float) -> list:
    return [
        {
            "timestamp": None,
            "sampledValue": [
                {"value": f"{wh:.0f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": f"{w:.0f}", "measurand": "Power.Active.Import", "unit": "W"},
            ],
        }
    ]


async def test_the_ocpp_packages_charge_point_runs_a_session_billed_the_register_delta(ocpp_server):
    app = ocpp_server
    url, clock = base_url(app), server_clock(base_url(app))
    basic = b64encode(f"{CP_ID}:{app.test_key}".encode()).decode()
    async with (
        connect(url, "client", 5) as dashboard,
        ws_connect(
            f"{url}/ocpp/{CP_ID}",
            subprotocols=["ocpp1.6"],
            additional_headers={"Authorization": f"Basic {basic}"},
        ) as websocket,
    ):
        assert websocket.subprotocol == "ocpp1.6"
        wallbox = Wallbox(CP_ID, websocket, response_timeout=TIMEOUT)
        runner = asyncio.create_task(wallbox.start())
        try:
            boot = await wallbox.call(
                call.BootNotification(
                    charge_point_vendor=BOOT["chargePointVendor"],
                    charge_point_model=BOOT["chargePointModel"],
                )
            )
            assert boot.status == "Accepted"
            authorized = await wallbox.call(call.Authorize(id_tag=CARD))
            assert authorized.id_tag_info["status"] == "Accepted"
            started = await wallbox.call(
                call.StartTransaction(
                    connector_id=1, id_tag=CARD, meter_start=12_000, timestamp=iso(clock())
                )
            )
            assert started.id_tag_info["status"] == "Accepted"
            transaction = started.transaction_id
            assert (await next_of(dashboard, "session_started"))["session_id"] == transaction
            wallbox.status = ChargePointStatus.charging
            await wallbox.call(
                call.StatusNotification(
                    connector_id=1,
                    error_code=ChargePointErrorCode.no_error,
                    status=ChargePointStatus.charging,
                )
            )
            for minute, wh in ((5, 12_600), (10, 13_200), (15, 13_650)):  # 7.2 kW, then 1.8 kW
                clock.advance(300)
                values = register(wh, 7200 if minute < 15 else 1800)
                values[0]["timestamp"] = iso(clock())
                await wallbox.call(
                    call.MeterValues(connector_id=1, transaction_id=transaction, meter_value=values)
                )
            live = await next_of(dashboard, "metrics")
            while live["w"] != 1800:
                live = await next_of(dashboard, "metrics")
            assert live["kwh"] == pytest.approx(1.65)
            clock.advance(60)
            stopped = await wallbox.call(
                call.StopTransaction(
                    meter_stop=13_700,
                    timestamp=iso(clock()),
                    transaction_id=transaction,
                    reason="EVDisconnected",
                )
            )
            assert stopped.id_tag_info["status"] == "Accepted"
            ended = await next_of(dashboard, "session_ended")
            assert ended["session_id"] == transaction and ended["kwh"] == pytest.approx(1.7)
            assert wallbox.triggered == 1  # the server asked for its status after the boot
        finally:
            runner.cancel()
    session = await app.storage.get_session(transaction)
    assert session.ended_at is not None
    assert session.kwh == pytest.approx((13_700 - 12_000) / 1000)  # billed = the register delta
    assert session.cost == pytest.approx(1.7 * 0.5)
