// Station: live V, A, W, kWh, cost and time, the power chart of the last POWER_WINDOW_S seconds
// (always that whole window, whatever the session's age), session events, and the STOP button
// (with confirmation) that sends the seed's `stop`; disabled while the page is not connected.
// An OCPP station without a session offers a remote start for a card UID (`remote_start`; the
// charger's answer lands in the events, the session when the charger starts it).
// For an admin, the firmware panel (view-firmware.js): the running version, "Actualizar firmware".

import { drawChart } from "./chart.js";
import { h, replace } from "./dom.js";
import * as fmt from "./format.js";
import { t } from "./i18n.js";
import { firmwarePanel } from "./view-firmware.js";
import { getJson } from "./rest.js";
import { POWER_WINDOW_S, eventText } from "./store.js";
import { figure, statusBadge } from "./widgets.js";

const MINUTES = POWER_WINDOW_S / 60;

export function mountStation(root, { store, link }, params) {
  const id = Number.parseInt(params.id, 10);
  const station = store.station(id);
  const head = h("div", { class: "station-head" });
  const figures = h("div", { class: "figures big", dataset: { testid: "live-figures" } });
  const staleNote = h("div", { class: "stale-note" });
  const controls = h("div", { class: "row" });
  const errorLine = h("div", { class: "error-text", role: "alert", dataset: { testid: "station-error" } });
  const canvas = h("canvas", {
    class: "chart", dataset: { testid: "power-chart" }, role: "img", "aria-label": t("station.chartLabel", { minutes: MINUTES }),
  });
  const events = h("ul", { class: "events", dataset: { testid: "events" } });
  let confirming = false;
  let startingCard = null; // the remote start form's UID while it is open (OCPP stations)
  let controlsKey = null;
  let backfilledSession = null;
  const firmware = firmwarePanel({ store, link }, id);

  replace(
    root,
    h("p", {}, h("a", { href: "#/" }, t("station.back"))),
    h("section", { class: "panel" }, head, figures, staleNote, controls, errorLine),
    firmware.el,
    h("section", { class: "panel" }, h("h2", {}, t("station.chartTitle", { minutes: MINUTES })), canvas),
    h("section", { class: "panel" }, h("h2", {}, t("station.events")), events),
  );

  function sendStop() {
    const session = station.session;
    confirming = false;
    if (!session) return render();
    errorLine.textContent = "";
    if (!link.send({ type: "stop", session_id: session.id, charger_id: id })) {
      errorLine.textContent = t("station.notSent");
    }
    render();
  }

  function sendRemoteStart(event) {
    event.preventDefault();
    const uid = startingCard.trim();
    if (!uid) return;
    errorLine.textContent = "";
    if (!link.send({ type: "remote_start", station_id: id, uid })) errorLine.textContent = t("station.notSent");
    startingCard = null;
    render();
  }

  function remoteStartControls() {
    if (startingCard === null) {
      return h("button", { dataset: { testid: "remote-start" }, onclick: () => { startingCard = ""; render(); } },
        t("station.remoteStart"));
    }
    return h(
      "form",
      { class: "confirm", dataset: { testid: "remote-start-form" }, onsubmit: sendRemoteStart },
      h("label", {}, t("station.remoteStartCard"), " ",
        h("input", { name: "uid", autocomplete: "off", dataset: { testid: "remote-start-uid" },
          oninput: (event) => { startingCard = event.target.value; } })),
      h("button", { type: "submit", dataset: { testid: "remote-start-send" } }, t("station.remoteStartSend")),
      h("button", { type: "button", dataset: { testid: "remote-start-cancel" }, onclick: () => { startingCard = null; render(); } },
        t("station.cancel")),
    );
  }

  // Rebuilt only when what they show changes, so a button is never swapped under a finger.
  function renderControls() {
    const session = station.session;
    const online = store.connected;
    const ocpp = station.protocol === "ocpp16";
    const key = `${session?.id ?? "none"}:${confirming}:${online}:${ocpp}:${startingCard !== null}`;
    if (key === controlsKey) return;
    controlsKey = key;
    if (!session) return replace(controls, ocpp && online ? remoteStartControls() : null);
    if (!online) {
      confirming = false;
      return replace(
        controls,
        h("button", { class: "danger", dataset: { testid: "stop" }, disabled: true, title: t("station.stopOffline") }, t("station.stop")),
        h("span", { class: "muted", dataset: { testid: "stop-offline" } }, t("station.stopOffline")),
      );
    }
    if (!confirming) {
      return replace(
        controls,
        h("button", { class: "danger", dataset: { testid: "stop" }, onclick: () => { confirming = true; render(); } }, t("station.stop")),
      );
    }
    replace(
      controls,
      h(
        "div",
        { class: "confirm" },
        h("span", {}, t("station.stopQuestion", { id: session.id, user: session.userName ?? t("station.thisUser") })),
        h("button", { class: "danger", dataset: { testid: "confirm-stop" }, onclick: sendStop }, t("station.yesStop")),
        h("button", { dataset: { testid: "cancel-stop" }, onclick: () => { confirming = false; render(); } }, t("station.cancel")),
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
      h("span", { class: "muted", dataset: { field: "user" } },
        session ? t("station.session", { id: session.id, user: session.userName ?? "—" }) : t("noSession")),
      station.tariff != null ? h("span", { class: "muted", dataset: { field: "tariff" } }, fmt.tariff(station.tariff)) : null,
    );
    figures.classList.toggle("stale", stale);
    replace(
      figures,
      figure(t("figure.voltage"), fmt.volts(session?.v), "v"),
      figure(t("figure.current"), fmt.amps(session?.a), "a"),
      figure(t("figure.power"), fmt.power(session?.w), "w"),
      figure(t("figure.energy"), fmt.kwh(session?.kwh), "kwh"),
      figure(t("figure.cost"), fmt.cost(session?.cost), "cost"),
      figure(t("figure.time"), fmt.duration(store.elapsed(station)), "time"),
    );
    staleNote.textContent = !store.connected ? t("station.staleOffline") : stale ? t("station.staleOld") : "";
    if (!session) confirming = false;
    renderControls();
    firmware.render();
    replace(
      events,
      station.events.length
        ? station.events.map((event) =>
            h("li", { class: event.kind === "error" ? "error" : "", title: event.params?.code ?? null, dataset: { code: event.params?.code ?? null } },
              h("time", {}, fmt.clock(event.at)), h("span", {}, eventText(event))))
        : h("li", { class: "empty muted", dataset: { testid: "no-events" } }, t("station.noEvents")),
    );
    renderChart();
  }

  function renderChart() {
    const session = station.session;
    // always the whole window the title names, ending now
    const now = Date.now() / 1000;
    drawChart(canvas, {
      series: [{ label: t("chart.power"), color: "#1d4ed8", unit: "W", points: station.power }],
      from: now - POWER_WINDOW_S,
      to: now,
      emptyText: session ? t("chart.waiting") : t("noSession"),
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
    const { error, text, stationId, code } = event.detail;
    if (error && (stationId === null || stationId === id)) {
      errorLine.textContent = text;
      errorLine.dataset.code = code ?? "";
    }
  };
  store.addEventListener("change", onChange);
  store.addEventListener("notice", onNotice);
  const ticker = setInterval(() => {
    const time = figures.querySelector('[data-field="time"]');
    if (time) time.textContent = fmt.duration(store.elapsed(station));
    renderChart();
  }, 1000);
  window.addEventListener("resize", renderChart);
  render();
  backfill();
  return () => {
    store.removeEventListener("change", onChange);
    store.removeEventListener("notice", onNotice);
    window.removeEventListener("resize", renderChart);
    clearInterval(ticker);
  };
}
