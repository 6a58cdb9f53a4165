"""/metrics in the Prometheus text format, read back with prometheus-client's own parser."""

from prometheus_client.parser import text_string_to_metric_families

from server.observability import MAX_MESSAGE_KEYS
from tests.dashboard.helpers import Charger, http_get, wait_until
from tests.live_server import connect, receive_json, receive_type, send_json


async def scrape(app) -> dict:
    answer = await http_get(app, "/metrics")
    assert answer.status == 200 and answer.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_metrics_count_chargers_sessions_readings_messages_and_errors(live_app, server_url):
    before = await scrape(live_app)
    assert before[("evse_chargers_connected", ())] == 0 and before[("evse_sessions_open", ())] == 0
    assert before[("evse_readings_ingested_total", ())] == 0
    charger = await Charger.connect(server_url)
    dashboard = await connect(server_url, "client", "all")
    try:
        await receive_type(dashboard, "init")
        refused = await charger.tap("04:DE:AD:BE:EF")
        assert refused["code"] == "CARD_UNKNOWN"
        await charger.start()
        await charger.meter()
        await charger.meter()
        await send_json(dashboard, {"type": "no_such_type"})
        await send_json(dashboard, {"type": "admin_add_user", "name": "Ana"})
        await receive_json(dashboard)

        async def two_readings():
            samples = await scrape(live_app)
            return samples if samples[("evse_readings_ingested_total", ())] == 2 else None

        samples = await wait_until(two_readings)
        assert samples[("evse_chargers_connected", ())] == 1
        assert samples[("evse_sessions_open", ())] == 1
        assert samples[("evse_messages_total", (("role", "publisher"), ("type", "nfc_scan")))] == 2
        assert samples[("evse_messages_total", (("role", "publisher"), ("type", "metrics")))] == 2
        assert (
            samples[("evse_messages_total", (("role", "client"), ("type", "admin_add_user")))] == 1
        )
        assert samples[("evse_errors_total", (("code", "CARD_UNKNOWN"),))] == 1
        assert samples[("evse_errors_total", (("code", "INVALID_MESSAGE"),))] == 1
    finally:
        await charger.close()
        await dashboard.close()

    async def charger_gone():
        return (await scrape(live_app))[("evse_chargers_connected", ())] == 0

    await wait_until(charger_gone)


async def test_random_message_types_cannot_grow_the_metrics_without_bound(live_app, server_url):
    dashboard = await connect(server_url, "client", "all")
    try:
        await receive_type(dashboard, "init")
        for n in range(200):
            await send_json(dashboard, {"type": f"junk_{n}"})
        for _ in range(200):
            assert (await receive_json(dashboard))["type"] == "error"
    finally:
        await dashboard.close()
    samples = await scrape(live_app)
    client_types = [labels for (name, labels) in samples if name == "evse_messages_total"]
    assert 0 < len(client_types) <= MAX_MESSAGE_KEYS + 1  # the first types seen, then `other`
    assert (
        samples[("evse_messages_total", (("role", "client"), ("type", "other")))]
        >= 200 - MAX_MESSAGE_KEYS
    )
