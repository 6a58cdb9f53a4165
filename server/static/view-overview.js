// Overview: every station with its status in colour and words, user, live power, kWh, cost, time.

import { h, replace } from "./dom.js";
import * as fmt from "./format.js";
import { figure, statusBadge } from "./widgets.js";

function stationCard(store, station) {
  const stale = store.isStale(station);
  const session = station.session;
  return h(
    "a",
    {
      class: `panel station-card${stale ? " stale" : ""}`,
      href: `#/station/${station.id}`,
      dataset: { testid: `station-${station.id}`, status: station.status },
    },
    h("header", {}, h("h2", {}, station.name), statusBadge(station.status, stale)),
    h("div", { class: "muted", dataset: { field: "user" } }, session ? `User: ${session.userName ?? "—"}` : "No session"),
    session
      ? h(
          "div",
          { class: "figures" },
          figure("Power", fmt.power(session.w), "w"),
          figure("Energy", fmt.kwh(session.kwh), "kwh"),
          figure("Cost", fmt.cost(session.cost), "cost"),
          figure("Time", fmt.duration(store.elapsed(station)), "time"),
        )
      : null,
  );
}

export function mountOverview(root, { store }) {
  const grid = h("div", { class: "cards" });
  const render = () => {
    const stations = store.sortedStations();
    replace(grid, stations.length ? stations.map((s) => stationCard(store, s)) : h("p", { class: "muted" }, "No stations yet. Add one under Cards & users."));
  };
  replace(root, h("h1", {}, "Stations"), grid);
  render();
  store.addEventListener("change", render);
  const ticker = setInterval(() => {
    for (const station of store.sortedStations()) {
      const time = grid.querySelector(`[data-testid="station-${station.id}"] [data-field="time"]`);
      if (time) time.textContent = fmt.duration(store.elapsed(station));
    }
  }, 1000);
  return () => {
    store.removeEventListener("change", render);
    clearInterval(ticker);
  };
}
