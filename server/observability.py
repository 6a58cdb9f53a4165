"""Operational metrics of one running server, exported in the Prometheus text format.

The server counts as it goes (`App.counters`, a `collections.Counter`, see server/app.py) and
the session core knows who is connected; this module turns both into Prometheus metrics at
scrape time through a prometheus-client custom collector on a private `CollectorRegistry` (one
per server, so two servers in one process, as in the tests, never share numbers):

    evse_chargers_connected            chargers (publishers) connected right now
    evse_sessions_open                 charging sessions open right now
    evse_readings_ingested_total       `metrics` readings accepted and queued for storage
    evse_messages_total{role,type}     inbound WebSocket messages by sender role and type
    evse_errors_total{code}            `error` messages sent, by error code

Counter keys it reads: "readings", "error:<CODE>", "message:<role>:<type>". Label values came
from the network once, so they are bounded again here: anything that is not a plain protocol
word is exported as `other`.
"""

import re
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER = "other"
ROLES = frozenset({"publisher", "client"})
_LABEL_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


MAX_MESSAGE_KEYS = 64  # distinct role/type pairs kept; later unknown ones count as `other`


def bounded(value: str) -> str:
    return value if _LABEL_WORD.match(value) else OTHER


def note_message(counters, role: str, message_type: object) -> None:
    """Count one inbound message in `counters` without letting senders grow it without bound."""
    role = role if role in ROLES else OTHER
    kind = bounded(message_type) if isinstance(message_type, str) else OTHER
    key = f"message:{role}:{kind}"
    if (
        key not in counters
        and sum(1 for k in counters if k.startswith("message:")) >= MAX_MESSAGE_KEYS
    ):
        key = f"message:{role}:{OTHER}"
    counters[key] += 1


class ServerCollector(Collector):
    """Reads the core's live counts and the app's counters each time Prometheus scrapes."""

    def __init__(self, core, counters: Mapping[str, int]):
        self.core = core
        self.counters = counters

    def collect(self):
        yield GaugeMetricFamily(
            "evse_chargers_connected",
            "Chargers (role=publisher) connected right now",
            value=self.core.connected_count(),
        )
        yield GaugeMetricFamily(
            "evse_sessions_open",
            "Charging sessions open right now",
            value=self.core.open_session_count(),
        )
        yield CounterMetricFamily(
            "evse_readings_ingested",
            "metrics readings accepted from chargers and queued for storage",
            value=self.counters.get("readings", 0),
        )
        messages: dict[tuple[str, str], int] = {}
        errors: dict[str, int] = {}
        for key, count in list(self.counters.items()):
            kind, _, rest = key.partition(":")
            if kind == "message":
                role, _, message_type = rest.partition(":")
                labels = (role if role in ROLES else OTHER, bounded(message_type))
                messages[labels] = messages.get(labels, 0) + count
            elif kind == "error":
                code = bounded(rest)
                errors[code] = errors.get(code, 0) + count
        by_type = CounterMetricFamily(
            "evse_messages",
            "Inbound WebSocket messages by sender role and message type",
            labels=["role", "type"],
        )
        for labels, count in sorted(messages.items()):
            by_type.add_metric(labels, count)
        yield by_type
        by_code = CounterMetricFamily(
            "evse_errors", "error messages sent, by error code", labels=["code"]
        )
        for code, count in sorted(errors.items()):
            by_code.add_metric([code], count)
        yield by_code


class Observability:
    """One server's metrics registry; `render()` is the /metrics body (serve as CONTENT_TYPE)."""

    def __init__(self, core, counters: Mapping[str, int]):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ServerCollector(core, counters))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def attach(app) -> Observability:
    """Give a server.app.App its metrics (`app.observability`), read from its core and counters."""
    app.observability = Observability(app.core, app.counters)
    return app.observability
