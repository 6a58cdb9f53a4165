// One stored session: its summary and the power and energy curve drawn from its readings.

import { drawChart } from "./chart.js";
import { h, replace } from "./dom.js";
import * as fmt from "./format.js";
import { getJson } from "./rest.js";
import { figure } from "./widgets.js";

export function mountSession(root, { store }, params) {
  const canvas = h("canvas", { class: "chart", dataset: { testid: "session-chart" }, "aria-label": "Power and energy of the session" });
  const summary = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  replace(
    root,
    h("p", {}, h("a", { href: "#/history" }, "← History")),
    h("section", { class: "panel" }, summary),
    h("section", { class: "panel" }, h("h2", {}, "Power and energy"), canvas),
  );
  let alive = true;
  let session = null;
  const draw = () => {
    if (!session) return;
    drawChart(canvas, {
      series: [
        { label: "Power (W)", color: "#1d4ed8", unit: "W", axis: "left", points: session.readings.map((r) => [r.ts, r.w]) },
        { label: "Energy (kWh)", color: "#15803d", unit: "kWh", axis: "right", points: session.readings.map((r) => [r.ts, r.kwh]) },
      ],
      emptyText: "This session has no stored readings",
    });
  };

  (async () => {
    try {
      session = await getJson(`/api/sessions/${encodeURIComponent(params.id)}`);
    } catch (error) {
      if (alive) replace(summary, h("p", { class: "error-text", dataset: { testid: "session-error" } }, error.message));
      return;
    }
    if (!alive) return;
    const stationName = store.stations.get(session.station_id)?.name ?? `Station ${session.station_id}`;
    replace(
      summary,
      h("h1", {}, `Session #${session.id}`),
      h(
        "p",
        { class: "muted" },
        `${stationName} · ${session.user_name} · card ${session.card_uid} · ${fmt.tariff(session.tariff)}`,
      ),
      h(
        "p",
        { dataset: { testid: "session-times" } },
        `Started ${fmt.dateTime(session.started_at)} · `,
        session.open ? "still charging" : `ended ${fmt.dateTime(session.ended_at)}`,
      ),
      h(
        "div",
        { class: "figures big", dataset: { testid: "session-figures" } },
        figure("Duration", fmt.duration(session.duration), "duration"),
        figure("Energy", fmt.kwh(session.kwh), "kwh"),
        figure("Cost", fmt.cost(session.cost), "cost"),
        figure("End reason", session.end_reason ?? "—", "end_reason"),
      ),
    );
    draw();
  })();
  window.addEventListener("resize", draw);
  return () => {
    alive = false;
    window.removeEventListener("resize", draw);
  };
}
