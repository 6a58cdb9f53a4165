// History: sessions filtered by station, user and date range, with totals, pages and a CSV
// download of the same selection. The filters live in the URL (#/history?station=1&from=...).

import { h, replace } from "./dom.js";
import * as fmt from "./format.js";
import { getJson } from "./rest.js";
import { dashboardToken } from "./token.js";

const PAGE_SIZE = 25;

// A yyyy-mm-dd from a date input, as unix seconds of the operator's local midnight.
function localDayStart(text, plusDays = 0) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
  if (!match) return null;
  return new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]) + plusDays).getTime() / 1000;
}

// A download link cannot carry a header: the token goes in the query (docs/security.md).
function csvQuery(filters) {
  const query = new URLSearchParams(apiQuery(filters, false));
  const token = dashboardToken();
  if (token) query.set("token", token);
  return query.toString();
}

export function apiQuery(filters, withPage) {
  const query = new URLSearchParams();
  if (filters.station) query.set("station", filters.station);
  if (filters.user) query.set("user", filters.user);
  const from = localDayStart(filters.from);
  const to = localDayStart(filters.to, 1); // the whole "to" day is included
  if (from !== null) query.set("from", String(from));
  if (to !== null) query.set("to", String(to)); // the API's "to" is exclusive
  if (withPage) {
    query.set("limit", String(PAGE_SIZE));
    query.set("offset", String(filters.offset || 0));
  }
  return query.toString();
}

function select(name, label, current, options) {
  return h(
    "label",
    {},
    label,
    h(
      "select",
      { name },
      h("option", { value: "" }, "All"),
      options.map(([value, text]) => h("option", { value: String(value), selected: String(value) === current }, text)),
    ),
  );
}

function sessionRow(item, stationName) {
  return h(
    "tr",
    { dataset: { testid: `session-row-${item.id}` } },
    h("td", {}, h("a", { href: `#/session/${item.id}` }, `#${item.id}`)),
    h("td", {}, stationName(item.station_id)),
    h("td", {}, item.user_name),
    h("td", {}, fmt.dateTime(item.started_at)),
    h("td", { class: "num" }, fmt.duration(item.duration)),
    h("td", { class: "num", dataset: { field: "kwh" } }, fmt.kwh(item.kwh)),
    h("td", { class: "num", dataset: { field: "cost" } }, fmt.cost(item.cost)),
    h("td", {}, item.open ? "charging" : item.end_reason ?? ""),
  );
}

export function mountHistory(root, { store, navigate }, params) {
  const filters = {
    station: params.station || "",
    user: params.user || "",
    from: params.from || "",
    to: params.to || "",
    offset: Number.parseInt(params.offset || "0", 10) || 0,
  };
  const form = h("form", { class: "filters panel", dataset: { testid: "history-filters" } });
  const tableArea = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading…"));
  const pager = h("div", { class: "pager" });
  replace(root, h("h1", {}, "History"), form, h("section", { class: "panel spaced" }, tableArea, pager));
  let alive = true;

  const stationName = (id) => store.stations.get(id)?.name ?? `Station ${id}`;
  const go = (changes) => {
    const next = { ...filters, ...changes };
    const query = new URLSearchParams();
    for (const key of ["station", "user", "from", "to"]) if (next[key]) query.set(key, next[key]);
    if (next.offset) query.set("offset", String(next.offset));
    navigate(`#/history${query.toString() ? `?${query}` : ""}`);
  };

  function renderForm(users) {
    replace(
      form,
      select("station", "Station", filters.station, store.sortedStations().map((s) => [s.id, s.name])),
      select("user", "User", filters.user, users.map((u) => [u.id, u.name])),
      h("label", {}, "From", h("input", { type: "date", name: "from", value: filters.from })),
      h("label", {}, "To", h("input", { type: "date", name: "to", value: filters.to })),
      h("button", { class: "primary", type: "submit" }, "Apply"),
      h("a", { href: `/api/sessions.csv?${csvQuery(filters)}`, download: "", dataset: { testid: "csv" } }, "Download CSV"),
    );
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    go({ station: data.get("station"), user: data.get("user"), from: data.get("from"), to: data.get("to"), offset: 0 });
  });

  function renderPage(page) {
    if (page.items.length === 0) {
      replace(tableArea, h("p", { class: "muted", dataset: { testid: "no-sessions" } }, "No sessions match these filters."));
      replace(pager);
      return;
    }
    replace(
      tableArea,
      h(
        "table",
        { dataset: { testid: "sessions" } },
        h("thead", {}, h("tr", {}, ["Session", "Station", "User", "Started", "Duration", "Energy", "Cost", "End"].map((t, i) =>
          h("th", { class: i >= 4 && i <= 6 ? "num" : "" }, t)))),
        h("tbody", {}, page.items.map((item) => sessionRow(item, stationName))),
        h(
          "tfoot",
          { dataset: { testid: "totals" } },
          h(
            "tr",
            {},
            h("td", { colspan: 4 }, `Total of ${page.totals.sessions} session${page.totals.sessions === 1 ? "" : "s"}`),
            h("td", { class: "num", dataset: { field: "duration" } }, fmt.duration(page.totals.duration)),
            h("td", { class: "num", dataset: { field: "kwh" } }, fmt.kwh(page.totals.kwh)),
            h("td", { class: "num", dataset: { field: "cost" } }, fmt.cost(page.totals.cost)),
            h("td", {}, ""),
          ),
        ),
      ),
    );
    const first = page.offset + 1;
    const last = page.offset + page.items.length;
    replace(
      pager,
      h("span", { class: "muted" }, `${first}–${last} of ${page.total}`),
      h(
        "span",
        { class: "row" },
        h("button", { disabled: page.offset === 0, onclick: () => go({ offset: Math.max(0, page.offset - PAGE_SIZE) }) }, "← Previous"),
        h("button", { disabled: last >= page.total, onclick: () => go({ offset: page.offset + PAGE_SIZE }) }, "Next →"),
      ),
    );
  }

  (async () => {
    let users = [];
    try {
      const [userList, stationList] = await Promise.all([getJson("/api/users"), getJson("/api/stations")]);
      users = userList.items;
      store.loadStations(stationList.items);
    } catch {
      // the filters just offer "All"
    }
    if (!alive) return;
    renderForm(users);
    try {
      const page = await getJson(`/api/sessions?${apiQuery(filters, true)}`);
      if (alive) renderPage(page);
    } catch (error) {
      if (alive) replace(tableArea, h("p", { class: "error-text" }, error.message));
    }
  })();
  return () => {
    alive = false;
  };
}
