"""The dashboards' encoder: their JSON messages (server/pushes.py) as built, and a neutral
Refusal (a refused remote stop, a refused frame) as the protocol's `error`. Dashboards speak
one protocol whatever their chargers speak."""

from __future__ import annotations

from server import pushes as p
from server.vocabulary import Refusal


class DashboardEncoder:
    name = "dashboard"

    @staticmethod
    def message(item) -> dict:
        if isinstance(item, Refusal):
            return p.error(item.message, item.code)
        return item

    def encode(self, item) -> str:
        return p.encode(self.message(item))


DASHBOARD = DashboardEncoder()
