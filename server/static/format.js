// Numbers for people: kWh with 3 decimals, cost as money, durations as h:mm:ss.

export const CURRENCY_SYMBOL = "$";
const DASH = "—";

function finite(x) {
  return typeof x === "number" && Number.isFinite(x);
}

export function kwh(x) {
  return finite(x) ? `${x.toFixed(3)} kWh` : DASH;
}

export function cost(x) {
  if (!finite(x)) return DASH;
  const sign = x < 0 ? "-" : "";
  const [whole, cents] = Math.abs(x).toFixed(2).split(".");
  return `${sign}${CURRENCY_SYMBOL}${whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",")}.${cents}`;
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
  return watts >= 1000 ? `${(watts / 1000).toFixed(2)} kW` : `${Math.round(watts)} W`;
}

export function volts(v) {
  return finite(v) ? `${v.toFixed(1)} V` : DASH;
}

export function amps(a) {
  return finite(a) ? `${a.toFixed(2)} A` : DASH;
}

export function dateTime(unixSeconds) {
  if (!finite(unixSeconds)) return DASH;
  return new Date(unixSeconds * 1000).toLocaleString([], {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

export function clock(unixSeconds) {
  if (!finite(unixSeconds)) return DASH;
  return new Date(unixSeconds * 1000).toLocaleTimeString([], {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
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
