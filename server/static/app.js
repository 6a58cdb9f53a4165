// The dashboard's entry point: one WebSocket subscribed to every station (estacionId=all), the
// store it feeds, the banners (disconnected; alerts by kind: emergency, fault, meter failure,
// offline limit, energy anomaly, duplicate charger) and a hash router over the views.

import { h, replace } from "./dom.js";
import { explainError } from "./explain.js";
import * as fmt from "./format.js";
import { language, languageEvents, setLanguage, t } from "./i18n.js";
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
const app = { store, link, signedOut: () => link.state === "refused", navigate: (hash) => { window.location.hash = hash; } };
const viewRoot = document.getElementById("view");
const alertsRoot = document.getElementById("alerts");
const linkState = document.getElementById("link-state");
// an emergency or fault alert not yet acknowledged while the station already works again
// (the charger reported its local reset): the alert stays, the "stays stopped" advice would lie
const LATCHING_KINDS = new Set(["emergency", "fault"]);
// What an alert banner says, by the alert's kind: the headline before the station's name
// (strings.js alert.<kind>) and the advice (advice.<kind>).
const ADVICE = {
  emergency: "advice.stopped", fault: "advice.stopped", meter_failure: "advice.meter_failure",
  offline_limit: "advice.offline_limit", energy_anomaly: "advice.energy_anomaly",
  duplicate_charger: "advice.duplicate_charger",
};
// alerts that are warnings about the bill, not faults that stopped the charger
const WARNING_KINDS = new Set(["energy_anomaly"]);

function alertText(alert, station) {
  const known = Object.hasOwn(ADVICE, alert.kind);
  const headline = known ? t(`alert.${alert.kind}`) : t("alert.other", { kind: alert.kind });
  const working = station.status === "disponible" || station.status === "cargando";
  const advice = LATCHING_KINDS.has(alert.kind) && working ? "advice.reset" : ADVICE[alert.kind] ?? "advice.other";
  return `${headline} ${station.name}${alert.sessionId ? t("alert.session", { id: alert.sessionId }) : ""}`
    + `${t("alert.at", { time: fmt.clock(alert.at) })} ${t(advice)}`;
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
  replace(viewRoot, h("h1", {}, t("notFound.title")), h("p", {}, h("a", { href: "#/" }, t("notFound.back"))));
}

function acknowledge(stationId, button) {
  button.disabled = true;
  link.request({ type: "admin_ack_alert", station_id: stationId }).then((reply) => {
    if (reply.type === "admin_result" && reply.ok) {
      store.apply({ type: "alert_acknowledged", charger_id: stationId });
    } else {
      button.disabled = link.state !== "open";
      button.textContent = t("alert.ackFailed", { reason: explainError(reply) });
    }
  });
}

// The no-token banner: how to sign in, commands as <code>, never as literal backticks.
function unauthorizedBanner() {
  return h("div", { class: "banner offline", dataset: { testid: "unauthorized" } },
    h("span", {}, t("banner.unauthorized1"), h("code", {}, "make run"), t("banner.unauthorized2"),
      h("code", {}, "python -m server.admin tokens issue"), t("banner.unauthorized3")));
}

// Rebuilt only when what they say changes, so an Acknowledge button is not swapped mid-click.
function renderBanners() {
  const seconds = retryAt ? Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) : 0;
  const alerts = [...store.alerts.values()];
  const stations = alerts.map((a) => store.station(a.stationId)).map((s) => [s.name, s.status]);
  const key = JSON.stringify([language(), link.state, link.failures > 0, seconds, alerts, stations]);
  if (key === bannersKey) return;
  bannersKey = key;
  const banners = [];
  if (link.state === "refused") {
    banners.push(unauthorizedBanner());
  } else if (link.state !== "open" && link.failures > 0) { // also while a reconnect attempt is under way
    banners.push(
      h("div", { class: "banner offline", dataset: { testid: "offline" } },
        t("banner.offline") + t("banner.reconnecting", { seconds })),
    );
  }
  for (const alert of alerts) {
    const station = store.station(alert.stationId);
    const button = h("button", { class: "danger", dataset: { testid: "acknowledge" }, disabled: link.state !== "open" },
      t("alert.acknowledge"));
    button.addEventListener("click", () => acknowledge(alert.stationId, button));
    const warning = WARNING_KINDS.has(alert.kind);
    banners.push(
      h("div", { class: warning ? "banner energy" : "banner emergency", role: "alert",
        dataset: { testid: `${warning ? "energy" : "emergency"}-${alert.stationId}`, kind: alert.kind } },
        h("span", {}, alertText(alert, station)),
        button),
    );
  }
  replace(alertsRoot, banners);
}

// Answers may arrive out of order (one on connect, one per alert pushed meanwhile): an answer
// older than one already applied would bring back a state the newer one replaced.
let alertsAsked = 0;
let alertsApplied = 0;

async function loadAlerts() {
  const requestedMs = Date.now();
  const asked = ++alertsAsked;
  try {
    const items = (await getJson("/api/alerts")).items;
    if (asked < alertsApplied) return;
    alertsApplied = asked;
    store.loadAlerts(items, requestedMs);
  } catch (error) {
    store.notice(error.message, true);
  }
}

async function loadStations() {
  const requestedMs = Date.now();
  try {
    store.loadStations((await getJson("/api/stations")).items, requestedMs);
  } catch (error) {
    store.notice(error.message, true);
  }
}

// How money is shown (server settings CURRENCY_SYMBOL / CURRENCY_DECIMALS); `$` and 2 until then.
async function loadSettings() {
  try {
    const settings = await getJson("/api/settings");
    fmt.setCurrency({ symbol: settings.currency_symbol, decimals: settings.currency_decimals });
  } catch {
    return; // an older server: the defaults stay
  }
  store.changed(null);
}

async function loadFromApi() {
  await Promise.all([loadSettings(), loadStations()]);
  await loadAlerts();
}

// The texts index.html carries (data-i18n="key"), the link state and the language switch.
function renderChrome() {
  document.documentElement.lang = language();
  document.title = t("page.title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  linkState.textContent = t(`link.${link.state}`);
  const switcher = document.getElementById("lang-switch");
  switcher.textContent = t("lang.switch");
  switcher.title = t("lang.switchTitle");
  switcher.lang = language() === "es" ? "en" : "es";
}

document.getElementById("lang-switch").addEventListener("click", () => setLanguage(language() === "es" ? "en" : "es"));
languageEvents.addEventListener("language", () => {
  renderChrome();
  bannersKey = null;
  renderBanners();
  route(); // the view is rebuilt in the new language (its state lives in the store and URL)
});

link.addEventListener("state", (event) => {
  const { state, retryInMs } = event.detail;
  retryAt = state === "closed" ? Date.now() + retryInMs : null;
  linkState.dataset.state = state;
  linkState.textContent = t(`link.${state}`);
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

renderChrome();
route();
link.start();
