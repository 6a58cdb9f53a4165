// One stored session: its summary and the power and energy curve drawn from its readings.
// A closed session's energy curve ends at what was billed, at its end: the final reading a
// charger's `stop`/`emergency`/idle `status` carries is the last stored reading (sessions ended
// before December 2026 lack it and stop short of the bill: 0.178 of 0.198 kWh in issue 11),
// and a final reading placed before the session's end is held flat to it.

import { drawChart } from "./chart.js";
import { h, replace } from "./dom.js";
import * as fmt from "./format.js";
import { t } from "./i18n.js";
import { getJson } from "./rest.js";
import { endReasonText, figure } from "./widgets.js";

// [[ts, kWh], ...] of the readings, closed by the billed total at the session's end.
export function energyCurve(session) {
  const points = session.readings.filter((r) => r.kwh != null).map((r) => [r.ts, r.kwh]);
  if (session.open || session.ended_at == null || typeof session.kwh !== "number") return points;
  const last = points.at(-1);
  if (last && last[0] >= session.ended_at && last[1] === session.kwh) return points;
  return [...points, [Math.max(session.ended_at, last ? last[0] : session.ended_at), session.kwh]];
}

export function mountSession(root, { store }, params) {
  const canvas = h("canvas", { class: "chart", dataset: { testid: "session-chart" }, role: "img", "aria-label": t("session.chartLabel") });
  const summary = h("div", {}, h("p", { class: "muted" }, t("session.loading")));
  replace(
    root,
    h("p", {}, h("a", { href: "#/history" }, t("session.back"))),
    h("section", { class: "panel" }, summary),
    h("section", { class: "panel" }, h("h2", {}, t("session.curve")), canvas),
  );
  let alive = true;
  let session = null;
  const draw = () => {
    if (!session) return;
    drawChart(canvas, {
      series: [
        { label: t("chart.power"), color: "#1d4ed8", unit: "W", axis: "left", points: session.readings.map((r) => [r.ts, r.w]) },
        { label: t("chart.energy"), color: "#15803d", unit: "kWh", axis: "right", points: energyCurve(session) },
      ],
      emptyText: t("session.noReadings"),
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
    const stationName = store.stations.get(session.station_id)?.name ?? t("stationN", { id: session.station_id });
    replace(
      summary,
      h("h1", {}, t("session.title", { id: session.id })),
      h(
        "p",
        { class: "muted" },
        `${stationName} · ${session.user_name} · ${t("session.card", { uid: session.card_uid })} · ${fmt.tariff(session.tariff)}`,
      ),
      h(
        "p",
        { dataset: { testid: "session-times" } },
        t("session.started", { at: fmt.dateTime(session.started_at) }),
        session.open ? t("session.stillCharging") : t("session.ended", { at: fmt.dateTime(session.ended_at) }),
      ),
      h(
        "div",
        { class: "figures big", dataset: { testid: "session-figures" } },
        figure(t("figure.duration"), fmt.duration(session.duration), "duration"),
        figure(t("figure.energy"), fmt.kwh(session.kwh), "kwh"),
        figure(t("figure.cost"), fmt.cost(session.cost), "cost"),
        figure(t("figure.endReason"), endReasonText(session.end_reason, session.open), "end_reason"),
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
