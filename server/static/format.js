// Numbers for people, in the page's language (Intl.NumberFormat: es `20,633 kWh`, en
// `20.633 kWh`): kWh with 3 decimals, cost with the server's currency symbol and decimals
// (settings CURRENCY_SYMBOL / CURRENCY_DECIMALS, default `$` and 2), durations as H:MM:SS (as
// the CSV writes them), dates and clocks in the browser's own time zone.

import { locale } from "./i18n.js";

const DASH = "—";
const currency = { symbol: "$", decimals: 2 };

function finite(x) {
  return typeof x === "number" && Number.isFinite(x);
}

// Settings from the server; anything missing or out of range keeps the default.
export function setCurrency({ symbol, decimals } = {}) {
  if (typeof symbol === "string" && symbol.length <= 8) currency.symbol = symbol;
  if (Number.isInteger(decimals) && decimals >= 0 && decimals <= 4) currency.decimals = decimals;
}

export function currencySettings() {
  return { ...currency };
}

const formatters = new Map();

export function number(x, decimals) {
  if (!finite(x)) return DASH;
  const key = `${locale()}:${decimals}`;
  if (!formatters.has(key)) {
    formatters.set(key, new Intl.NumberFormat(locale(), { minimumFractionDigits: decimals, maximumFractionDigits: decimals }));
  }
  return formatters.get(key).format(x);
}

export function kwh(x) {
  return finite(x) ? `${number(x, 3)} kWh` : DASH;
}

export function cost(x) {
  if (!finite(x)) return DASH;
  const text = number(Math.abs(x), currency.decimals);
  const negative = x < 0 && text.replace(/\D/g, "").replace(/^0+/, "") !== "";
  return `${negative ? "-" : ""}${currency.symbol}${text}`;
}

export function tariff(x) {
  return finite(x) ? `${cost(x)}/kWh` : DASH;
}

export function duration(seconds) {
  if (!finite(seconds) || seconds < 0) return DASH;
  const s = Math.floor(seconds);
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const secs = s % 60;
  return `${hours}:${String(minutes).padStart(2, "0")}:${String(secs).padStart(2, "0")}`;
}

export function power(watts) {
  if (!finite(watts)) return DASH;
  return watts >= 1000 ? `${number(watts / 1000, 2)} kW` : `${number(Math.round(watts), 0)} W`;
}

export function volts(v) {
  return finite(v) ? `${number(v, 1)} V` : DASH;
}

export function amps(a) {
  return finite(a) ? `${number(a, 2)} A` : DASH;
}

export function dateTime(unixSeconds) {
  if (!finite(unixSeconds)) return DASH;
  return new Date(unixSeconds * 1000).toLocaleString(locale(), {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

export function clock(unixSeconds) {
  if (!finite(unixSeconds)) return DASH;
  return new Date(unixSeconds * 1000).toLocaleTimeString(locale(), {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

// A short label for chart ticks: hours and minutes; seconds, or the day instead, when asked.
export function tick(unixSeconds, { withSeconds = false, withDate = false } = {}) {
  if (!finite(unixSeconds)) return DASH;
  const date = new Date(unixSeconds * 1000);
  if (withDate) return date.toLocaleDateString(locale(), { day: "numeric", month: "short" });
  return date.toLocaleTimeString(locale(), {
    hour: "2-digit", minute: "2-digit", ...(withSeconds ? { second: "2-digit" } : {}),
  });
}

// Seconds since the epoch from an ISO-8601 text or a number of seconds; null when neither.
export function toUnixSeconds(value) {
  if (finite(value)) return value;
  if (typeof value === "string") {
    const ms = Date.parse(value);
    if (Number.isFinite(ms)) return ms / 1000;
  }
  return null;
}
