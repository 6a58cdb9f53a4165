// Cards and users: add a user, give them a card, enable or disable a card; add a station and
// set its tariff. Changes travel as admin_* messages on the WebSocket (the HTTP side is GET only);
// the lists are re-read from the HTTP API after every change.

import { h, replace } from "./dom.js";
import * as fmt from "./format.js";
import { getJson } from "./rest.js";
import { resultLine, showResult } from "./widgets.js";

function input(name, label, attrs = {}) {
  return h("label", {}, label, h("input", { name, ...attrs }));
}

export function mountAdmin(root, { store, link }) {
  const usersTable = h("div", { class: "table-wrap" });
  const cardsTable = h("div", { class: "table-wrap" });
  const stationsTable = h("div", { class: "table-wrap" });
  const userSelect = h("select", { name: "user_id", required: true });
  let alive = true;

  // Send one admin message; show its outcome under the form; refresh the lists on success.
  async function submit(message, result, okText) {
    const reply = await link.request(message);
    if (!alive) return false;
    if (reply.type === "admin_result" && reply.ok) {
      showResult(result, true, okText(reply));
      await refresh();
      return true;
    }
    showResult(result, false, reply.code ? `${reply.message} (${reply.code})` : reply.message);
    return false;
  }

  function form(testid, fields, buttonText, build) {
    const result = resultLine();
    const el = h("form", { class: "form", dataset: { testid } }, fields, h("button", { class: "primary", type: "submit" }, buttonText));
    el.addEventListener("submit", async (event) => {
      event.preventDefault();
      const [message, okText] = build(new FormData(el));
      if (await submit(message, result, okText)) el.reset();
    });
    return [el, result];
  }

  const userForm = form("add-user", [input("name", "Name", { required: true, maxlength: 100 })], "Add user", (data) => [
    { type: "admin_add_user", name: String(data.get("name")).trim() },
    (reply) => `User ${reply.user.name} added (id ${reply.user.id})`,
  ]);
  const cardForm = form(
    "add-card",
    [input("uid", "Card UID", { required: true, maxlength: 64, placeholder: "04:A3:2B:1C" }), h("label", {}, "User", userSelect)],
    "Give card",
    (data) => [
      { type: "admin_add_card", uid: String(data.get("uid")).trim(), user_id: Number(data.get("user_id")) },
      (reply) => `Card ${reply.card.uid} given to ${reply.card.user_name}`,
    ],
  );
  const stationForm = form(
    "add-station",
    [
      input("name", "Name", { required: true, maxlength: 100 }),
      input("tariff", "Tariff per kWh", { required: true, type: "number", min: 0, step: "0.01", value: "7.00" }),
      input("station_id", "Id (optional)", { type: "number", min: 1, step: 1 }),
    ],
    "Add station",
    (data) => {
      const message = { type: "admin_add_station", name: String(data.get("name")).trim(), tariff: Number(data.get("tariff")) };
      if (data.get("station_id")) message.station_id = Number(data.get("station_id"));
      return [message, (reply) => `Station ${reply.station.name} added (id ${reply.station.id})`];
    },
  );
  const listResult = resultLine();
  const stationResult = resultLine();

  replace(
    root,
    h("h1", {}, "Cards, users and stations"),
    h(
      "div",
      { class: "admin-grid" },
      h("section", { class: "panel" }, h("h2", {}, "Users"), ...userForm, usersTable),
      h("section", { class: "panel" }, h("h2", {}, "Cards"), ...cardForm, listResult, cardsTable),
    ),
    h("section", { class: "panel spaced" }, h("h2", {}, "Stations"), ...stationForm, stationResult, stationsTable),
  );

  function renderUsers(users) {
    replace(userSelect, users.map((u) => h("option", { value: String(u.id) }, `${u.name} (#${u.id})`)));
    replace(
      usersTable,
      h("table", { dataset: { testid: "users" } },
        h("thead", {}, h("tr", {}, h("th", {}, "Id"), h("th", {}, "Name"))),
        h("tbody", {}, users.map((u) => h("tr", {}, h("td", {}, String(u.id)), h("td", {}, u.name))))),
    );
  }

  function renderCards(cards) {
    replace(
      cardsTable,
      h("table", { dataset: { testid: "cards" } },
        h("thead", {}, h("tr", {}, h("th", {}, "UID"), h("th", {}, "User"), h("th", {}, "State"), h("th", {}, ""))),
        h("tbody", {}, cards.map((card) =>
          h("tr", { dataset: { testid: `card-${card.uid}` } },
            h("td", {}, card.uid),
            h("td", {}, card.user_name),
            h("td", { dataset: { field: "state" } }, card.enabled ? "enabled" : "disabled"),
            h("td", {}, h("button", {
              dataset: { testid: "toggle" },
              onclick: () => submit(
                { type: "admin_set_card_enabled", uid: card.uid, enabled: !card.enabled },
                listResult,
                () => `Card ${card.uid} ${card.enabled ? "disabled" : "enabled"}`,
              ),
            }, card.enabled ? "Disable" : "Enable")))))),
    );
  }

  function renderStations(stations) {
    replace(
      stationsTable,
      h("table", { dataset: { testid: "stations" } },
        h("thead", {}, h("tr", {}, h("th", {}, "Id"), h("th", {}, "Name"), h("th", {}, "Tariff"), h("th", {}, "New tariff"))),
        h("tbody", {}, stations.map((station) => {
          const tariffForm = h("form", { class: "row" },
            h("input", { name: "tariff", type: "number", min: 0, step: "0.01", required: true, value: String(station.tariff), "aria-label": `Tariff of ${station.name}` }),
            h("button", { type: "submit" }, "Set"));
          tariffForm.addEventListener("submit", (event) => {
            event.preventDefault();
            const tariff = Number(new FormData(tariffForm).get("tariff"));
            submit({ type: "admin_set_tariff", station_id: station.id, tariff }, stationResult,
              () => `Tariff of ${station.name} set to ${fmt.tariff(tariff)}`);
          });
          return h("tr", { dataset: { testid: `station-row-${station.id}` } },
            h("td", {}, String(station.id)), h("td", {}, station.name), h("td", { dataset: { field: "tariff" } }, fmt.tariff(station.tariff)), h("td", {}, tariffForm));
        }))),
    );
  }

  async function refresh() {
    try {
      const [users, cards, stations] = await Promise.all([getJson("/api/users"), getJson("/api/cards"), getJson("/api/stations")]);
      if (!alive) return;
      renderUsers(users.items);
      renderCards(cards.items);
      renderStations(stations.items);
      store.loadStations(stations.items);
    } catch (error) {
      if (alive) showResult(listResult, false, error.message);
    }
  }
  refresh();
  return () => {
    alive = false;
  };
}
