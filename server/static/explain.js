// Server refusals as sentences in the page's language: an `error` reply's code (CARD_UNKNOWN,
// SESSION_MISMATCH, ...) and, for admin refusals, the field its message names
// (`admin_add_card: uid: ...` -> what a valid card UID is). The code itself stays available
// to the caller (shown as a tooltip) for support; the wire message is never parsed for more
// than the field or the thing and id it names.

import { has, locale, t } from "./i18n.js";

const THINGS = new Set(["station", "user", "card", "alert", "session"]);

function fieldSentence(message) {
  // "admin_add_card: uid: nfc_uid must be ..." / "admin_set_tariff: tariff must be from 0 to 10000 per kWh"
  const match = /^admin_\w+: (\w+)/.exec(message);
  if (!match) return null;
  const field = match[1];
  if (/^admin_\w+: max power /.test(message)) {
    // "admin_set_max_power: max power must be a number of watts above 0 and at most 50000, not ..."
    const maxW = Number(/at most ([0-9.]+)/.exec(message)?.[1] ?? "50000");
    return t("field.max_power", { max: (maxW / 1000).toLocaleString(locale()) });
  }
  if (field === "tariff") {
    const max = /to ([0-9.e+]+) per kWh/.exec(message)?.[1];
    return t("field.tariff", { max: max ? Number(max).toLocaleString(locale()) : "10000" });
  }
  return has(`field.${field}`) ? t(`field.${field}`) : null;
}

function thingSentence(key, message) {
  // "station 2 does not exist" / "card 04A32B1C already exists"
  const match = /^(\w+) (\S+) (?:does not exist|already exists)/.exec(message);
  if (!match || !THINGS.has(match[1])) return null;
  return t(key, { thing: t(`thing.${match[1]}`), id: match[2] });
}

// A sentence for an `error` reply ({code, message, repeats?}).
export function explainError(reply) {
  const code = reply?.code ?? null;
  const message = String(reply?.message ?? "");
  let text = null;
  if (code === "INVALID_MESSAGE") text = fieldSentence(message);
  else if (code === "NOT_FOUND") text = thingSentence("notFound", message);
  else if (code === "DUPLICATE") text = thingSentence("duplicate", message);
  if (!text && code && has(`code.${code}`)) text = t(`code.${code}`);
  if (!text) text = t("code.other", { message: code ? `${message} (${code})` : message });
  const repeats = reply?.repeats;
  if (Number.isInteger(repeats) && repeats > 0) text += t("code.repeats", { n: repeats });
  return text;
}
