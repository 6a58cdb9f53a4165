// The station view's firmware panel (admin tokens only): the version the charger runs, the
// outcome of the last update, and "Actualizar firmware" with the versions the server offers
// (`admin_list_firmware`, then `admin_update_firmware`; the outcome arrives as `firmware`
// pushes). A token that may not administer gets FORBIDDEN and the panel stays hidden.

import { h, replace } from "./dom.js";
import { explainError } from "./explain.js";
import { t } from "./i18n.js";
import { resultLine, showResult } from "./widgets.js";

export function firmwarePanel({ store, link }, id) {
  const body = h("div", { class: "row" });
  const result = resultLine();
  const panel = h("section", { class: "panel", hidden: true, dataset: { testid: "firmware" } },
    h("h2", {}, t("firmware.title")), body, result);
  let versions = null; // null: not loaded yet
  let loading = false;
  let key = null;

  async function load() {
    if (loading || versions !== null || !store.connected) return;
    loading = true;
    const reply = await link.request({ type: "admin_list_firmware" });
    loading = false;
    if (reply.type !== "admin_result") {
      if (reply.code === "FORBIDDEN") versions = []; // not an admin: the panel stays hidden
      return;
    }
    versions = reply.versions.map((v) => v.version);
    const known = reply.stations[String(id)];
    const station = store.station(id);
    if (known && !station.firmware) station.firmware = known;
    panel.hidden = false;
    render();
  }

  async function order(version) {
    showResult(result, true, "");
    const reply = await link.request({ type: "admin_update_firmware", station_id: id, version });
    if (reply.type === "admin_result" && reply.ok) {
      store.station(id).firmware = reply.firmware;
      showResult(result, true, t("firmware.sent", { version }));
      render();
    } else {
      showResult(result, false, explainError(reply), reply.code ?? null);
    }
  }

  function render() {
    if (versions === null) return load();
    if (panel.hidden) return;
    const state = store.station(id).firmware ?? { fw: null, update: null };
    const update = state.update;
    const nextKey = JSON.stringify([state, versions, store.connected]);
    if (nextKey === key) return;
    key = nextKey;
    const select = h("select", { name: "version", dataset: { testid: "firmware-version" } },
      versions.map((v) => h("option", { value: v, selected: v === versions[versions.length - 1] }, v)));
    replace(
      body,
      h("span", { dataset: { field: "fw" } },
        t("firmware.running", { fw: state.fw === "usb" ? t("firmware.usb") : state.fw ?? t("firmware.unknown") })),
      update ? h("span", { class: "muted", dataset: { field: "fw-update", result: update.result } },
        t("firmware.last", { version: update.version, result: t(`firmware.result.${update.result}`) })) : null,
      versions.length
        ? h("form", { class: "confirm", onsubmit: (event) => { event.preventDefault(); order(select.value); } },
          select,
          h("button", { type: "submit", dataset: { testid: "firmware-update" }, disabled: !store.connected },
            t("firmware.update")))
        : h("span", { class: "muted" }, t("firmware.none")),
    );
  }

  render();
  return { el: panel, render };
}
