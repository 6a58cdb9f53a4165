// Overview: every station with its status in colour and words, user, live power, kWh, cost, time.

import { h, replace } from "./dom.js";
import * as fmt from "./format.js";
import { t } from "./i18n.js";
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
    h("div", { class: "muted", dataset: { field: "user" } },
      session ? t("overview.user", { user: session.userName ?? "—" }) : t("noSession")),
    session
      ? h(
          "div",
          { class: "figures" },
          figure(t("figure.power"), fmt.power(session.w), "w"),
          figure(t("figure.energy"), fmt.kwh(session.kwh), "kwh"),
          figure(t("figure.cost"), fmt.cost(session.cost), "cost"),
          figure(t("figure.time"), fmt.duration(store.elapsed(station)), "time"),
        )
      : null,
  );
}

// What the grid says when it has no card: signed out, still loading, or really no station.
function emptyState(store, app) {
  if (app.signedOut()) return h("p", { class: "muted", dataset: { testid: "signed-out" } }, t("overview.signedOut"));
  if (!store.connected && !store.loaded) return h("p", { class: "muted" }, t("overview.loading"));
  return h("p", { class: "muted", dataset: { testid: "no-stations" } }, t("overview.empty"));
}

export function mountOverview(root, app) {
  const { store } = app;
  const grid = h("div", { class: "cards" });
  const render = () => {
    const stations = app.signedOut() ? [] : store.sortedStations();
    replace(grid, stations.length ? stations.map((s) => stationCard(store, s)) : emptyState(store, app));
  };
  replace(root, h("h1", {}, t("overview.title")), grid);
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
