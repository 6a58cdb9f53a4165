// Small pieces of UI shared by the views.

import { h } from "./dom.js";

const STATUS_MEANING = {
  disponible: "available: charger online, no session",
  cargando: "charging: a session is open",
  emergencia: "emergency: stopped, needs a local reset",
  desconectado: "disconnected: the charger is offline",
};

export function statusBadge(status, stale = false) {
  const word = status || "desconectado";
  return h(
    "span",
    { class: `status status-${word}${stale ? " stale" : ""}`, title: STATUS_MEANING[word] ?? word, dataset: { field: "status" } },
    word,
  );
}

export function figure(label, value, field) {
  return h("div", { class: "figure" }, h("span", { class: "label" }, label), h("span", { class: "value", dataset: { field } }, value));
}

export function resultLine() {
  return h("div", { class: "result", role: "status" });
}

export function showResult(el, ok, text) {
  el.className = `result ${ok ? "ok" : "fail"}`;
  el.textContent = text;
}
