// History: sessions filtered by station, user and date range, with totals, pages and a CSV
// download of the same selection. The filters live in the URL (#/history?station=1&from=...).

import { h, replace } from "./dom.js";
import * as fmt from "./format.js";
import { t } from "./i18n.js";
import { getJson } from "./rest.js";
import { dashboardToken } from "./token.js";
import { endReasonText } from "./widgets.js";

const PAGE_SIZE = 25;

// A yyyy-mm-dd from a date input, as unix seconds of the operator's local midnight.
function localDayStart(text, plusDays = 0) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
  if (!match) return null;
  return new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]) + plusDays).getTime() / 1000;
}

// The browser's IANA time zone: the CSV writes its times with this offset, as the page shows them.
function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch {
    return "";
  }
}

// A download link cannot carry a header: the token goes in the query (docs/security.md).
function csvQuery(filters) {
  const query = new URLSearchParams(apiQuery(filters, false));
  const zone = browserTimeZone();
  if (zone) query.set("tz", zone);
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
      h("option", { value: "" }, t("history.all")),
      options.map(([value, text]) => h("option", { value: String(value), selected: String(value) === current }, text)),
    ),
  );
}

const COLUMNS = ["session", "station", "user", "started", "duration", "energy", "cost", "end"];

// A cell with its column's name in data-label: on a phone each row is a card of labelled lines.
function cell(column, attrs, ...children) {
  return h("td", { ...attrs, "data-label": t(`history.col.${column}`) }, ...children);
}

function sessionRow(item, stationName) {
  return h(
    "tr",
    { dataset: { testid: `session-row-${item.id}` } },
    cell("session", {}, h("a", { href: `#/session/${item.id}` }, `#${item.id}`)),
    cell("station", {}, stationName(item.station_id)),
    cell("user", {}, item.user_name),
    cell("started", {}, fmt.dateTime(item.started_at)),
    cell("duration", { class: "num", dataset: { field: "duration" } }, fmt.duration(item.duration)),
    cell("energy", { class: "num", dataset: { field: "kwh" } }, fmt.kwh(item.kwh)),
    cell("cost", { class: "num", dataset: { field: "cost" } }, fmt.cost(item.cost)),
    cell("end", { dataset: { field: "end_reason", reason: item.open ? "open" : item.end_reason ?? "" } },
      endReasonText(item.end_reason, item.open)),
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
  const tableArea = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, t("history.loading")));
  const pager = h("div", { class: "pager" });
  replace(root, h("h1", {}, t("history.title")), form, h("section", { class: "panel spaced" }, tableArea, pager));
  let alive = true;

  const stationName = (id) => store.stations.get(id)?.name ?? t("stationN", { id });
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
      select("station", t("history.station"), filters.station, store.sortedStations().map((s) => [s.id, s.name])),
      select("user", t("history.user"), filters.user, users.map((u) => [u.id, u.name])),
      h("label", {}, t("history.from"), h("input", { type: "date", name: "from", value: filters.from })),
      h("label", {}, t("history.to"), h("input", { type: "date", name: "to", value: filters.to })),
      h("button", { class: "primary", type: "submit" }, t("history.apply")),
      h("a", { href: `/api/sessions.csv?${csvQuery(filters)}`, download: "", dataset: { testid: "csv" } }, t("history.csv")),
    );
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    go({ station: data.get("station"), user: data.get("user"), from: data.get("from"), to: data.get("to"), offset: 0 });
  });

  function renderPage(page) {
    if (page.items.length === 0) {
      replace(tableArea, h("p", { class: "muted", dataset: { testid: "no-sessions" } }, t("history.empty")));
      replace(pager);
      return;
    }
    replace(
      tableArea,
      h(
        "table",
        { dataset: { testid: "sessions" } },
        h("thead", {}, h("tr", {}, COLUMNS.map((column, i) =>
          h("th", { class: i >= 4 && i <= 6 ? "num" : "" }, t(`history.col.${column}`))))),
        h("tbody", {}, page.items.map((item) => sessionRow(item, stationName))),
        h(
          "tfoot",
          { dataset: { testid: "totals" } },
          h(
            "tr",
            {},
            h("td", { colspan: 4, class: "total-label" }, t("history.total", { n: page.totals.sessions })),
            cell("duration", { class: "num", dataset: { field: "duration" } }, fmt.duration(page.totals.duration)),
            cell("energy", { class: "num", dataset: { field: "kwh" } }, fmt.kwh(page.totals.kwh)),
            cell("cost", { class: "num", dataset: { field: "cost" } }, fmt.cost(page.totals.cost)),
            h("td", { class: "filler" }, ""),
          ),
        ),
      ),
    );
    const first = page.offset + 1;
    const last = page.offset + page.items.length;
    replace(
      pager,
      h("span", { class: "muted" }, t("history.range", { first, last, total: page.total })),
      h(
        "span",
        { class: "row" },
        h("button", { disabled: page.offset === 0, onclick: () => go({ offset: Math.max(0, page.offset - PAGE_SIZE) }) }, t("history.previous")),
        h("button", { disabled: last >= page.total, onclick: () => go({ offset: page.offset + PAGE_SIZE }) }, t("history.next")),
      ),
    );
  }

  (async () => {
    let users = [];
    try {
      const requestedMs = Date.now();
      const [userList, stationList] = await Promise.all([getJson("/api/users"), getJson("/api/stations")]);
      users = userList.items;
      store.loadStations(stationList.items, requestedMs);
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
