"""The protocol-neutral seam (issue 12): the core and the effect runner know no charger protocol,
the seed codec is today's JSON byte for byte, the hub writes to each connection as it speaks."""

import asyncio
import subprocess
import sys

import pytest

from server import protocol as p
from server.codecs import CODECS, SEED
from server.codecs.dashboard import DASHBOARD
from server.hub import Hub
from server.vocabulary import (
    Acknowledge,
    CardRead,
    ChargerStop,
    EmergencyReport,
    MeterSample,
    Refusal,
    RequestStatus,
    StartCharging,
    StatusReport,
    StopCharging,
    Welcome,
)


def modules_loaded_by(module: str) -> set[str]:
    """The modules a fresh interpreter has loaded after importing `module` (and nothing else)."""
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_the_core_loads_no_charger_protocol_and_no_socket_library():
    loaded = modules_loaded_by("server.core")
    assert not loaded & {
        "server.protocol",
        "server.codecs",
        "server.codecs.seed",
        "server.ws",
        "server.hub",
    }
    assert "websockets" not in loaded


def test_the_effect_runner_imports_no_websockets_and_no_wire_format():
    loaded = modules_loaded_by("server.effects")
    assert "websockets" not in loaded
    assert not loaded & {"server.protocol", "server.codecs", "server.ws"}


@pytest.mark.parametrize(
    ("command", "text"),
    [
        (Welcome(1), '{"type":"connected","role":"publisher","estacionId":"1"}'),
        (
            StartCharging(123, "Juan Pérez"),
            '{"type":"start","session_id":123,"user_name":"Juan Pérez"}',
        ),
        (StopCharging(123), '{"type":"stop","session_id":123}'),
        (
            Refusal("Tarjeta desconocida", p.CARD_UNKNOWN),
            '{"type":"error","message":"Tarjeta desconocida","code":"CARD_UNKNOWN"}',
        ),
        (RequestStatus(), '{"type":"sync_request","from":"server"}'),
        (Acknowledge(7), '{"type":"ack","n":7}'),
    ],
)
def test_the_seed_codec_writes_each_command_as_the_seed_message_byte_for_byte(command, text):
    assert SEED.encode(command) == text


@pytest.mark.parametrize(
    ("frame", "event"),
    [
        ('{"type":"nfc_scan","nfc_uid":"VIRTUAL-1-A4F2E8"}', CardRead("VIRTUAL-1-A4F2E8")),
        (
            '{"type":"metrics","session_id":5,"v":230,"a":10,"w":2300,"ts":1800000000,"wh":12}',
            MeterSample(5, 230.0, 10.0, 2300.0, 1_800_000_000.0, 12.0),
        ),
        (
            '{"type":"stop","session_id":5,"reason":"meter_failure"}',
            ChargerStop(5, reason="meter_failure"),
        ),
        ('{"type":"emergency","session_id":5,"wh":12}', EmergencyReport(5, wh=12.0)),
        ('{"type":"status","state":"charging","session_id":5}', StatusReport("charging", 5)),
    ],
)
def test_the_seed_codec_reads_each_charger_frame_as_its_neutral_event(frame, event):
    data = SEED.decode(frame)
    assert SEED.kind(data) == data["type"]
    assert SEED.event(data) == event


def test_the_seed_codec_refuses_a_frame_as_before():
    with pytest.raises(p.ProtocolError) as refused:
        SEED.event(
            SEED.decode('{"type":"start","session_id":1}')
        )  # a server message, not a charger's
    assert refused.value.code == p.INVALID_MESSAGE
    assert list(CODECS) == ["seed", "ocpp16"]  # issue 12 registered OCPP 1.6J next to the seed


class Recorder:
    """Stands in for a server connection: the hub only calls send(text)."""

    def __init__(self):
        self.sent = []

    async def send(self, text):
        self.sent.append(text)


class Shouting:
    """A second protocol: what a charger that is not seed gets from the same command."""

    name = "shouting"

    @staticmethod
    def encode(command) -> str:
        return type(command).__name__.upper()


def test_the_hub_writes_to_each_connection_in_its_own_protocol():
    hub, seed_charger, other_charger, dashboard = Hub(), Recorder(), Recorder(), Recorder()
    hub.set_publisher(1, seed_charger, SEED)
    hub.set_publisher(2, other_charger, Shouting)

    async def scenario():
        await hub.send_to_publisher(1, StopCharging(9))
        await hub.send_to_publisher(2, StopCharging(9))
        await hub.send(dashboard, Refusal("ESP32 no conectado", p.CHARGER_OFFLINE))

    asyncio.run(scenario())
    assert seed_charger.sent == ['{"type":"stop","session_id":9}']
    assert other_charger.sent == ["STOPCHARGING"]
    assert dashboard.sent == [DASHBOARD.encode(Refusal("ESP32 no conectado", p.CHARGER_OFFLINE))]
    assert dashboard.sent == [
        '{"type":"error","message":"ESP32 no conectado","code":"CHARGER_OFFLINE"}'
    ]
    assert hub.remove_publisher(2, other_charger) and other_charger not in hub.encoders
