// Cards and users: add a user, give them a card, enable or disable a card; add a station, set its
// tariff and max power and turn its offline authorization on or off. Changes travel as admin_* messages on the
// WebSocket (the HTTP side is GET only); the lists are re-read from the HTTP API after every
// change. Refusals are shown as sentences (explain.js); every action is disabled while the page
// is not connected. The offline authorization column (setting, latest signed list) comes from
// `admin_list_offline_auth`: shown only once the server answers it, so never to a token that
// may not administer (FORBIDDEN). The max power column shows every station's value; its field
// and button (`admin_set_max_power`, kW on the page, W on the wire) unless the server answered
// FORBIDDEN: a listing that failed otherwise (SERVER_ERROR, no answer) leaves them to the admin.

import { h, replace } from "./dom.js";
import { explainError } from "./explain.js";
import * as fmt from "./format.js";
import { t } from "./i18n.js";
import { getJson } from "./rest.js";
import { resultLine, showResult } from "./widgets.js";

function input(name, label, attrs = {}) {
  return h("label", {}, label, h("input", { name, ...attrs }));
}

// A table whose cells carry their column's name (data-label): on a phone each row is a card.
function table(testid, columns, rows, emptyText) {
  if (rows.length === 0) return h("p", { class: "muted empty", dataset: { testid: `${testid}-empty` } }, emptyText);
  return h("table", { dataset: { testid } },
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows));
}

function cell(label, attrs, ...children) {
  return h("td", { ...attrs, "data-label": label }, ...children);
}

export function mountAdmin(root, { store, link }) {
  const usersTable = h("div", { class: "table-wrap" });
  const cardsTable = h("div", { class: "table-wrap" });
  const stationsTable = h("div", { class: "table-wrap" });
  const userSelect = h("select", { name: "user_id", required: true });
  const offlineNote = h("p", { class: "banner offline", dataset: { testid: "admin-offline" }, hidden: true }, t("admin.offline"));
  let alive = true;
  let stationItems = [];
  // admin_list_offline_auth's `stations` ({"1": {offline_auth, keyed, list}}); null: not (yet)
  // answered, and the column is not shown.
  let offline = null;
  // May this token administer: false only once the server answered FORBIDDEN. Gates the
  // admin-only controls (the max power field), not the offline column's data.
  let mayAdminister = true;

  // Every button that sends something: disabled while the page is not connected.
  function syncEnabled() {
    const online = store.connected;
    offlineNote.hidden = online;
    for (const button of root.querySelectorAll("button[data-sends]")) button.disabled = !online;
  }

  // Send one admin message; show its outcome under the form; refresh the lists on success.
  async function submit(message, result, okText) {
    const reply = await link.request(message);
    if (!alive) return false;
    if (reply.type === "admin_result" && reply.ok) {
      showResult(result, true, okText(reply));
      await refresh();
      return true;
    }
    showResult(result, false, explainError(reply), reply.code ?? null);
    return false;
  }

  function form(testid, fields, buttonText, build) {
    const result = resultLine();
    const el = h("form", { class: "form", dataset: { testid } }, fields,
      h("button", { class: "primary", type: "submit", dataset: { sends: "" } }, buttonText));
    el.addEventListener("submit", async (event) => {
      event.preventDefault();
      const [message, okText] = build(new FormData(el));
      if (await submit(message, result, okText)) el.reset();
    });
    return [el, result];
  }

  const userForm = form("add-user", [input("name", t("admin.name"), { required: true, maxlength: 100 })], t("admin.addUser"), (data) => [
    { type: "admin_add_user", name: String(data.get("name")).trim() },
    (reply) => t("admin.userAdded", { name: reply.user.name, id: reply.user.id }),
  ]);
  const cardForm = form(
    "add-card",
    [input("uid", t("admin.uid"), { required: true, maxlength: 64, placeholder: "04:A3:2B:1C" }), h("label", {}, t("admin.user"), userSelect)],
    t("admin.giveCard"),
    (data) => [
      { type: "admin_add_card", uid: String(data.get("uid")).trim(), user_id: Number(data.get("user_id")) },
      (reply) => t("admin.cardGiven", { uid: reply.card.uid, user: reply.card.user_name }),
    ],
  );
  const stationForm = form(
    "add-station",
    [
      input("name", t("admin.name"), { required: true, maxlength: 100 }),
      input("tariff", t("admin.tariff"), { required: true, type: "number", min: 0, step: "0.01", value: "7.00" }),
      input("station_id", t("admin.idOptional"), { type: "number", min: 1, step: 1 }),
      input("charge_point_id", t("admin.chargePointOptional"), { maxlength: 48, autocomplete: "off" }),
    ],
    t("admin.addStation"),
    (data) => {
      const message = { type: "admin_add_station", name: String(data.get("name")).trim(), tariff: Number(data.get("tariff")) };
      if (data.get("station_id")) message.station_id = Number(data.get("station_id"));
      const chargePoint = String(data.get("charge_point_id") ?? "").trim();
      if (chargePoint) message.charge_point_id = chargePoint;
      return [message, (reply) => reply.station.charge_point_id
        ? t("admin.ocppStationAdded", { name: reply.station.name, id: reply.station.id, cp: reply.station.charge_point_id })
        : t("admin.stationAdded", { name: reply.station.name, id: reply.station.id })];
    },
  );
  const listResult = resultLine();
  const stationResult = resultLine();

  replace(
    root,
    h("h1", {}, t("admin.title")),
    offlineNote,
    h(
      "div",
      { class: "admin-grid" },
      h("section", { class: "panel" }, h("h2", {}, t("admin.users")), ...userForm, usersTable),
      h("section", { class: "panel" }, h("h2", {}, t("admin.cards")), ...cardForm, listResult, cardsTable),
    ),
    h("section", { class: "panel spaced" }, h("h2", {}, t("admin.stations")), ...stationForm, stationResult, stationsTable),
  );

  function renderUsers(users) {
    replace(userSelect, users.map((u) => h("option", { value: String(u.id) }, `${u.name} (#${u.id})`)));
    const id = t("admin.col.id");
    const name = t("admin.col.name");
    replace(usersTable, table("users", [id, name],
      users.map((u) => h("tr", {}, cell(id, {}, String(u.id)), cell(name, {}, u.name))), t("admin.noUsers")));
  }

  function renderCards(cards) {
    const [uid, user, state, action] = ["uid", "user", "state", "action"].map((c) => t(`admin.col.${c}`));
    replace(cardsTable, table("cards", [uid, user, state, h("span", { class: "visually-hidden" }, action)],
      cards.map((card) =>
        h("tr", { dataset: { testid: `card-${card.uid}` } },
          cell(uid, {}, card.uid),
          cell(user, {}, card.user_name),
          cell(state, { dataset: { field: "state", enabled: String(card.enabled) } }, card.enabled ? t("admin.enabled") : t("admin.disabled")),
          cell(action, { class: "actions" }, h("button", {
            dataset: { testid: "toggle", sends: "" },
            onclick: () => submit(
              { type: "admin_set_card_enabled", uid: card.uid, enabled: !card.enabled },
              listResult,
              () => t(card.enabled ? "admin.cardDisabled" : "admin.cardEnabled", { uid: card.uid }),
            ),
          }, card.enabled ? t("admin.disable") : t("admin.enable"))))),
      t("admin.noCards")));
  }

  // A station's offline authorization: the setting, its switch and the latest list signed for
  // it (version, cards; "pending" when the charger has not had a list with this setting yet).
  function offlineCell(label, station) {
    const attrs = { class: "stacked", dataset: { field: "offline" } };
    if (station.protocol === "ocpp16") return cell(label, attrs, h("span", { class: "muted" }, t("admin.offlineNotApplicable")));
    const info = offline[String(station.id)];
    if (!info) return cell(label, attrs, "—");
    const on = info.offline_auth;
    const list = info.list;
    let detail = t("admin.offlineNoKey");
    if (info.keyed && !list) detail = t("admin.offlineNoList");
    if (info.keyed && list) {
      detail = t("admin.offlineList", { version: list.version, cards: list.cards })
        + (list.offline !== on ? ` (${t("admin.offlineListPending")})` : "");
    }
    attrs.dataset.enabled = String(on);
    return cell(label, attrs, h("div", { class: "offline-auth" },
      h("div", { class: "row" },
        h("span", { dataset: { field: "offline-state" } }, on ? t("admin.offlineOn") : t("admin.offlineOff")),
        h("button", {
          dataset: { testid: "offline-toggle", sends: "" },
          title: t("admin.offlineOfName", { name: station.name }),
          onclick: () => submit(
            { type: "admin_set_offline_auth", station_id: station.id, enabled: !on },
            stationResult,
            () => t("admin.offlineSet", { name: station.name, on: !on }),
          ),
        }, on ? t("admin.offlineTurnOff") : t("admin.offlineTurnOn"))),
      h("span", { class: "muted", dataset: { field: "offline-list" } }, detail)));
  }

  // A station's max power: its value in kW; for an administrator also a field (kW, whole watts
  // on the wire) and a button. Out of range is left to the server, whose refusal says the range.
  function maxPowerCell(label, station) {
    const watts = station.max_power_w;
    const attrs = { class: "stacked", dataset: { field: "max-power", watts: String(watts) } };
    if (!mayAdminister) return cell(label, attrs, fmt.power(watts));
    const powerForm = h("form", { class: "row", dataset: { testid: "max-power-form" } },
      h("input", { name: "max_power_kw", type: "number", step: "any", required: true, inputmode: "decimal",
        value: String(watts / 1000), "aria-label": t("admin.maxPowerOf", { name: station.name }) }),
      h("button", { type: "submit", dataset: { sends: "", testid: "max-power-save" } }, t("admin.set")));
    powerForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const kw = Number(new FormData(powerForm).get("max_power_kw"));
      const maxPowerW = Math.round(kw * 1000); // 7.4 kW is 7400 W, not 7400.000000000001
      submit({ type: "admin_set_max_power", station_id: station.id, max_power_w: maxPowerW }, stationResult,
        (reply) => t("admin.maxPowerSet", { name: station.name, power: fmt.power(reply.station.max_power_w) }));
    });
    return cell(label, attrs, powerForm);
  }

  function renderStations(stations) {
    const [id, name, protocol, tariff, newTariff, maxPower, offlineAuth] =
      ["id", "name", "protocol", "tariff", "newTariff", "maxPower", "offline"].map((c) => t(`admin.col.${c}`));
    const columns = [id, name, protocol, tariff, newTariff, maxPower];
    if (offline !== null) columns.push(offlineAuth);
    stationsTable.dataset.offline = !mayAdminister ? "forbidden" : offline !== null ? "shown" : "unknown";
    replace(stationsTable, table("stations", columns,
      stations.map((station) => {
        const tariffForm = h("form", { class: "row" },
          h("input", { name: "tariff", type: "number", min: 0, step: "0.01", required: true, value: String(station.tariff),
            "aria-label": t("admin.tariffOf", { name: station.name }) }),
          h("button", { type: "submit", dataset: { sends: "" } }, t("admin.set")));
        tariffForm.addEventListener("submit", (event) => {
          event.preventDefault();
          const value = Number(new FormData(tariffForm).get("tariff"));
          submit({ type: "admin_set_tariff", station_id: station.id, tariff: value }, stationResult,
            () => t("admin.tariffSet", { name: station.name, tariff: fmt.tariff(value) }));
        });
        return h("tr", { dataset: { testid: `station-row-${station.id}` } },
          cell(id, {}, String(station.id)), cell(name, {}, station.name),
          cell(protocol, { dataset: { field: "protocol" } }, station.protocol === "ocpp16"
            ? t("admin.protocol.ocpp16", { cp: station.charge_point_id }) : t("admin.protocol.seed")),
          cell(tariff, { dataset: { field: "tariff" } }, fmt.tariff(station.tariff)), cell(newTariff, {}, tariffForm),
          maxPowerCell(maxPower, station),
          offline !== null ? offlineCell(offlineAuth, station) : null);
      }),
      t("admin.noStations")));
    syncEnabled();
  }

  // The offline authorization column's data; true when it changed what the table shows.
  async function loadOffline() {
    if (!mayAdminister || !store.connected) return false;
    const reply = await link.request({ type: "admin_list_offline_auth" });
    if (reply.type === "admin_result" && reply.ok) {
      offline = reply.stations;
      return true;
    }
    if (reply.code !== "FORBIDDEN") return false; // not connected or no answer: asked again on reconnect
    mayAdminister = false;
    offline = null;
    return true;
  }

  async function refresh() {
    try {
      const requestedMs = Date.now();
      const [users, cards, stations] = await Promise.all([
        getJson("/api/users"), getJson("/api/cards"), getJson("/api/stations"), loadOffline(),
      ]);
      if (!alive) return;
      renderUsers(users.items);
      renderCards(cards.items);
      stationItems = stations.items;
      renderStations(stationItems);
      store.loadStations(stations.items, requestedMs);
    } catch (error) {
      if (alive) showResult(listResult, false, error.message);
    }
    syncEnabled();
  }
  // Connected after the page was drawn: the offline column is asked for then.
  let asking = false;
  async function onChange() {
    syncEnabled();
    if (offline !== null || !mayAdminister || asking || !store.connected) return;
    asking = true;
    const changed = await loadOffline();
    asking = false;
    if (alive && changed) renderStations(stationItems);
  }
  store.addEventListener("change", onChange);
  syncEnabled();
  refresh();
  return () => {
    alive = false;
    store.removeEventListener("change", onChange);
  };
}
