// Small pieces of UI shared by the views.

import { h } from "./dom.js";
import { has, t } from "./i18n.js";

// A station's status in colour and words; the seed's wire word stays in data-status.
export function statusBadge(status, stale = false) {
  const word = status || "desconectado";
  const known = has(`status.${word}`);
  return h(
    "span",
    {
      class: `status status-${word}${stale ? " stale" : ""}`,
      title: known ? t(`statusMeaning.${word}`) : word,
      dataset: { field: "status", status: word },
    },
    known ? t(`status.${word}`) : word,
  );
}

// Why a session ended, as a sentence (the stored end_reason stays in data-reason).
export function endReasonText(reason, open = false) {
  if (open) return t("reason.open");
  if (!reason) return "—";
  return has(`reason.${reason}`) ? t(`reason.${reason}`) : t("reason.unknown", { reason });
}

// A number and its unit as two spans, so a long value may wrap between them, never inside.
export function quantity(text) {
  const match = /^(.*\S)\s+(kWh|kW|W|V|A)$/.exec(text);
  if (!match) return h("span", { class: "num" }, text);
  return [h("span", { class: "num" }, match[1]), " ", h("span", { class: "unit" }, match[2])];
}

export function figure(label, value, field) {
  return h("div", { class: "figure" }, h("span", { class: "label" }, label),
    h("span", { class: "value", dataset: { field } }, quantity(value)));
}

export function resultLine() {
  return h("div", { class: "result", role: "status" });
}

export function showResult(el, ok, text, code = null) {
  el.className = `result ${ok ? "ok" : "fail"}`;
  el.textContent = text;
  if (code) el.title = code;
  else el.removeAttribute("title");
  el.dataset.code = code ?? "";
}
