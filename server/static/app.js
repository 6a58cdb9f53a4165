// The dashboard's entry point: one WebSocket subscribed to every station (estacionId=all), the
// store it feeds, the banners (disconnected; alerts by kind: emergency, fault, meter failure,
// offline limit, energy anomaly, duplicate charger) and a hash router over the views.

import { h, replace } from "./dom.js";
import * as fmt from "./format.js";
import { LiveLink, dashboardSocketUrl } from "./link.js";
import { getJson } from "./rest.js";
import { dashboardToken } from "./token.js";
import { Store } from "./store.js";
import { mountAdmin } from "./view-admin.js";
import { mountHistory } from "./view-history.js";
import { mountOverview } from "./view-overview.js";
import { mountSession } from "./view-session.js";
import { mountStation } from "./view-station.js";

const ROUTES = [
  [/^\/$/, "overview", mountOverview],
  [/^\/station\/(?<id>\d+)$/, "overview", mountStation],
  [/^\/history$/, "history", mountHistory],
  [/^\/session\/(?<id>\d+)$/, "history", mountSession],
  [/^\/admin$/, "admin", mountAdmin],
];

const store = new Store();
const link = new LiveLink(dashboardSocketUrl(window.location, dashboardToken()));
const app = { store, link, navigate: (hash) => { window.location.hash = hash; } };
const viewRoot = document.getElementById("view");
const alertsRoot = document.getElementById("alerts");
const linkState = document.getElementById("link-state");
// What an alert banner says, by the alert's kind: [headline before the station's name, advice].
const STOPPED_UNTIL_RESET = "The charger stays stopped until it is reset on site.";
// an emergency or fault alert not yet acknowledged while the station already works again
// (the charger reported its local reset): the alert stays, the "stays stopped" advice would lie
const RESET_ON_SITE = "Rearmado en sitio: el cargador vuelve a funcionar. Reconozca la alerta una vez revisado.";
const LATCHING_KINDS = new Set(["emergency", "fault"]);
const ALERT_TEXTS = {
  emergency: ["EMERGENCY stop at", STOPPED_UNTIL_RESET],
  fault: ["FAULT reported by", STOPPED_UNTIL_RESET],
  meter_failure: ["METER FAILURE at",
    "Charging was stopped because the meter went silent or sent corrupt readings. Check the meter before the next session."],
  offline_limit: ["OFFLINE LIMIT reached at",
    "Charging was stopped because the charger ran too long without the server. Check its network."],
  // an energy warning, not a stop: the charger keeps charging, the interval was billed bounded
  energy_anomaly: ["ANOMALÍA DE ENERGÍA en",
    "Una lectura superó la potencia máxima de la estación: ese intervalo se facturó acotado. Revise el medidor y el reloj del cargador."],
  duplicate_charger: ["CARGADOR DUPLICADO en",
    "Dos cargadores se conectan como la misma estación y se desplazan uno al otro. Revise el estacionId configurado en cada cargador."],
};
// alerts that are warnings about the bill, not faults that stopped the charger
const WARNING_KINDS = new Set(["energy_anomaly"]);

function alertText(alert, station) {
  const [headline, advice] = ALERT_TEXTS[alert.kind] ?? [`ALERT (${alert.kind}) at`, "Check the charger."];
  const working = station.status === "disponible" || station.status === "cargando";
  const shown = LATCHING_KINDS.has(alert.kind) && working ? RESET_ON_SITE : advice;
  return `${headline} ${station.name}${alert.sessionId ? ` (session ${alert.sessionId})` : ""} at ${fmt.clock(alert.at)}. ${shown}`;
}

let unmount = () => {};
let retryAt = null;
let bannersKey = null;

function route() {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const [path, queryText = ""] = raw.split("?");
  const query = Object.fromEntries(new URLSearchParams(queryText));
  unmount();
  for (const [pattern, nav, mount] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === nav);
      unmount = mount(viewRoot, app, { ...query, ...match.groups }) || (() => {});
      return;
    }
  }
  unmount = () => {};
  replace(viewRoot, h("h1", {}, "Page not found"), h("p", {}, h("a", { href: "#/" }, "Back to the stations")));
}

function acknowledge(stationId, button) {
  button.disabled = true;
  link.request({ type: "admin_ack_alert", station_id: stationId }).then((reply) => {
    if (reply.type === "admin_result" && reply.ok) {
      store.apply({ type: "alert_acknowledged", charger_id: stationId });
    } else {
      button.disabled = false;
      button.textContent = `Acknowledge (failed: ${reply.message})`;
    }
  });
}

// Rebuilt only when what they say changes, so an Acknowledge button is not swapped mid-click.
function renderBanners() {
  const seconds = retryAt ? Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) : 0;
  const alerts = [...store.alerts.values()];
  const stations = alerts.map((a) => store.station(a.stationId)).map((s) => [s.name, s.status]);
  const key = JSON.stringify([link.state, link.failures > 0, seconds, alerts, stations]);
  if (key === bannersKey) return;
  bannersKey = key;
  const banners = [];
  if (link.state === "refused") {
    banners.push(
      h("div", { class: "banner offline", dataset: { testid: "unauthorized" } },
        "This dashboard needs a valid token: open the address `make run` printed, or ask an admin for one (python -m server.admin tokens issue)."),
    );
  } else if (link.state !== "open" && link.failures > 0) { // also while a reconnect attempt is under way
    banners.push(
      h("div", { class: "banner offline", dataset: { testid: "offline" } },
        `Disconnected from the server. Values shown are the last known, not live. Reconnecting${seconds ? ` in ${seconds} s` : ""}…`),
    );
  }
  for (const alert of alerts) {
    const station = store.station(alert.stationId);
    const button = h("button", { class: "danger", dataset: { testid: "acknowledge" } }, "Acknowledge");
    button.addEventListener("click", () => acknowledge(alert.stationId, button));
    const warning = WARNING_KINDS.has(alert.kind);
    banners.push(
      h("div", { class: warning ? "banner energy" : "banner emergency", role: "alert",
        dataset: { testid: `${warning ? "energy" : "emergency"}-${alert.stationId}` } },
        h("span", {}, alertText(alert, station)),
        button),
    );
  }
  replace(alertsRoot, banners);
}

async function loadAlerts() {
  const requestedMs = Date.now();
  try {
    store.loadAlerts((await getJson("/api/alerts")).items, requestedMs);
  } catch (error) {
    store.notice(error.message, true);
  }
}

async function loadStations() {
  try {
    store.loadStations((await getJson("/api/stations")).items);
  } catch (error) {
    store.notice(error.message, true);
  }
}

async function loadFromApi() {
  await loadStations();
  await loadAlerts();
}

link.addEventListener("state", (event) => {
  const { state, retryInMs } = event.detail;
  retryAt = state === "closed" ? Date.now() + retryInMs : null;
  linkState.dataset.state = state;
  linkState.textContent = { connecting: "Connecting…", open: "Live", closed: "Disconnected", refused: "Not signed in" }[state];
  store.setConnected(state === "open");
  if (state === "open") loadFromApi();
  renderBanners();
});
link.addEventListener("message", (event) => store.apply(event.detail));
store.addEventListener("change", renderBanners);
store.addEventListener("alerts-outdated", loadAlerts);
store.addEventListener("stations-outdated", loadStations);
setInterval(() => { if (link.state !== "open") renderBanners(); }, 1000);
window.addEventListener("hashchange", route);

route();
link.start();
