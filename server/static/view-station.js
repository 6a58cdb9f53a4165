// Station: live V, A, W, kWh, cost and time, the power chart of the last minutes, session
// events, and the STOP button (with confirmation) that sends the seed's `stop`.

import { drawChart } from "./chart.js";
import { h, replace } from "./dom.js";
import * as fmt from "./format.js";
import { getJson } from "./rest.js";
import { POWER_WINDOW_S } from "./store.js";
import { figure, statusBadge } from "./widgets.js";

export function mountStation(root, { store, link }, params) {
  const id = Number.parseInt(params.id, 10);
  const station = store.station(id);
  const head = h("div", { class: "station-head" });
  const figures = h("div", { class: "figures big", dataset: { testid: "live-figures" } });
  const staleNote = h("div", { class: "stale-note" });
  const controls = h("div", { class: "row" });
  const errorLine = h("div", { class: "error-text", role: "alert", dataset: { testid: "station-error" } });
  const canvas = h("canvas", { class: "chart", dataset: { testid: "power-chart" }, "aria-label": "Power over the last minutes" });
  const events = h("ul", { class: "events", dataset: { testid: "events" } });
  let confirming = false;
  let controlsKey = null;
  let backfilledSession = null;

  replace(
    root,
    h("p", {}, h("a", { href: "#/" }, "← All stations")),
    h("section", { class: "panel" }, head, figures, staleNote, controls, errorLine),
    h("section", { class: "panel" }, h("h2", {}, `Power, last ${POWER_WINDOW_S / 60} minutes`), canvas),
    h("section", { class: "panel" }, h("h2", {}, "Events"), events),
  );

  function sendStop() {
    const session = station.session;
    confirming = false;
    if (!session) return render();
    errorLine.textContent = "";
    if (!link.send({ type: "stop", session_id: session.id, charger_id: id })) {
      errorLine.textContent = "Not connected to the server: the stop was not sent.";
    }
    render();
  }

  // Rebuilt only when what they show changes, so a button is never swapped under a finger.
  function renderControls() {
    const session = station.session;
    const key = `${session?.id ?? "none"}:${confirming}`;
    if (key === controlsKey) return;
    controlsKey = key;
    if (!session) return replace(controls);
    if (!confirming) {
      return replace(
        controls,
        h("button", { class: "danger", dataset: { testid: "stop" }, onclick: () => { confirming = true; render(); } }, "STOP charging"),
      );
    }
    replace(
      controls,
      h(
        "div",
        { class: "confirm" },
        h("span", {}, `Stop session ${session.id} of ${session.userName ?? "this user"}?`),
        h("button", { class: "danger", dataset: { testid: "confirm-stop" }, onclick: sendStop }, "Yes, stop"),
        h("button", { dataset: { testid: "cancel-stop" }, onclick: () => { confirming = false; render(); } }, "Cancel"),
      ),
    );
  }

  function render() {
    const stale = store.isStale(station);
    const session = station.session;
    replace(
      head,
      h("h1", {}, station.name),
      statusBadge(station.status, stale),
      h("span", { class: "muted", dataset: { field: "user" } }, session ? `Session ${session.id} · ${session.userName ?? "—"}` : "No session"),
      station.tariff != null ? h("span", { class: "muted" }, fmt.tariff(station.tariff)) : null,
    );
    figures.classList.toggle("stale", stale);
    replace(
      figures,
      figure("Voltage", fmt.volts(session?.v), "v"),
      figure("Current", fmt.amps(session?.a), "a"),
      figure("Power", fmt.power(session?.w), "w"),
      figure("Energy", fmt.kwh(session?.kwh), "kwh"),
      figure("Cost", fmt.cost(session?.cost), "cost"),
      figure("Time", fmt.duration(store.elapsed(station)), "time"),
    );
    staleNote.textContent = !store.connected
      ? "Not connected: the values above are the last known, not live."
      : stale
        ? "No reading from the charger for a while: the values above may be old."
        : "";
    if (!session) confirming = false;
    renderControls();
    replace(
      events,
      station.events.map((event) =>
        h("li", { class: event.kind === "error" ? "error" : "" }, h("time", {}, fmt.clock(event.at)), event.text),
      ),
    );
    renderChart();
  }

  function renderChart() {
    const session = station.session;
    // The window grows from the session's first reading up to the last POWER_WINDOW_S seconds.
    const now = Date.now() / 1000;
    const first = station.power.length ? station.power[0][0] : now;
    drawChart(canvas, {
      series: [{ label: "Power (W)", color: "#1d4ed8", unit: "W", points: station.power }],
      from: Math.min(now - 60, Math.max(now - POWER_WINDOW_S, first)),
      to: now,
      emptyText: session ? "Waiting for readings…" : "No session",
    });
  }

  async function backfill() {
    const session = station.session;
    if (!session || session.id == null || backfilledSession === session.id) return;
    backfilledSession = session.id;
    try {
      const stored = await getJson(`/api/sessions/${session.id}`);
      store.loadReadings(id, session.id, stored.readings);
    } catch {
      // the live chart still fills from metrics
    }
  }

  const onChange = (event) => {
    if (event.detail.all || event.detail.stationId === id) {
      render();
      backfill();
    }
  };
  const onNotice = (event) => {
    const { error, text, stationId } = event.detail;
    if (error && (stationId === null || stationId === id)) errorLine.textContent = text;
  };
  store.addEventListener("change", onChange);
  store.addEventListener("notice", onNotice);
  const ticker = setInterval(() => {
    const time = figures.querySelector('[data-field="time"]');
    if (time) time.textContent = fmt.duration(store.elapsed(station));
    renderChart();
  }, 1000);
  render();
  backfill();
  return () => {
    store.removeEventListener("change", onChange);
    store.removeEventListener("notice", onNotice);
    clearInterval(ticker);
  };
}
