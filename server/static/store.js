// What the dashboard knows about every station, fed by WebSocket messages (one handler per
// message type, in MESSAGE_HANDLERS) and by the HTTP API. Views read it and listen to "change"
// (detail: {stationId} or {all: true}) and "notice" (detail: {text, error, code}).
// Events are kept as a key and raw values and turned into text when shown (eventText), so a
// language switch re-words the whole log.

import { explainError } from "./explain.js";
import * as fmt from "./format.js";
import { has, t } from "./i18n.js";

export const POWER_WINDOW_S = 600;
const MAX_EVENTS = 50;
const STALE_AFTER_MS = 15000;

const nowS = () => Date.now() / 1000;

function blankStation(id) {
  return { id, liveAtMs: -Infinity, name: t("stationN", { id }), tariff: null, status: "desconectado", session: null, power: [], events: [] };
}

function sessionFrom(raw) {
  if (!raw || typeof raw !== "object") return null;
  const id = raw.session_id ?? raw.id ?? null;
  return {
    id,
    userName: raw.user_name ?? null,
    startedAt: fmt.toUnixSeconds(raw.started_at ?? raw.timestamp),
    v: raw.v ?? null, a: raw.a ?? null, w: raw.w ?? null,
    kwh: raw.kwh ?? 0, cost: raw.cost ?? 0,
    time: raw.time ?? raw.duration ?? null,
    timeAtMs: Date.now(),
    lastMetricsMs: null,
  };
}

export class Store extends EventTarget {
  constructor() {
    super();
    this.stations = new Map();
    this.alerts = new Map(); // station id -> {stationId, sessionId, at, kind, receivedMs}
    this.connected = false;
    this.loaded = false; // true once the station list (init or /api/stations) arrived
  }

  station(id) {
    if (!this.stations.has(id)) this.stations.set(id, blankStation(id));
    return this.stations.get(id);
  }

  sortedStations() {
    return [...this.stations.values()].sort((x, y) => x.id - y.id);
  }

  changed(stationId) {
    this.dispatchEvent(new CustomEvent("change", { detail: stationId == null ? { all: true } : { stationId } }));
  }

  notice(text, error = false, stationId = null, code = null) {
    this.dispatchEvent(new CustomEvent("notice", { detail: { text, error, stationId, code } }));
  }

  log(station, key, params = {}, kind = "info") {
    station.events.unshift({ at: nowS(), key, params, kind });
    station.events.length = Math.min(station.events.length, MAX_EVENTS);
  }

  setConnected(connected) {
    this.connected = connected;
    this.changed(null);
  }

  // Stations as the HTTP API lists them (names, tariffs, live status). A status the socket
  // pushed after the request was sent (requestedMs) is newer than the answer's and is kept.
  loadStations(items, requestedMs = -Infinity) {
    this.loaded = true;
    for (const item of items) {
      const station = this.station(item.id);
      station.name = item.name;
      station.tariff = item.tariff;
      if (item.protocol) station.protocol = item.protocol;
      const pushedSince = station.liveAtMs >= requestedMs;
      if (item.status && !pushedSince) station.status = item.status;
      if (item.session !== undefined && !station.session && !pushedSince) station.session = sessionFrom(item.session);
    }
    this.changed(null);
  }

  // Unacknowledged alerts as /api/alerts lists them; an alert pushed on the socket after the
  // request was sent (requestedMs) is kept even if the answer does not have it yet.
  loadAlerts(items, requestedMs) {
    for (const [stationId, alert] of this.alerts) {
      if (!(alert.receivedMs >= requestedMs)) this.alerts.delete(stationId);
    }
    for (const alert of items) {
      const current = this.alerts.get(alert.station_id); // newest first: an older one replaces
      if (current && !(isWarning(current.kind) && !isWarning(alert.kind))) continue; // only a warning
      this.alerts.set(alert.station_id, {
        stationId: alert.station_id, sessionId: alert.session_id, at: alert.created_at, kind: alert.kind, receivedMs: 0,
      });
    }
    this.changed(null);
  }

  // Backfill the live power chart from a session's stored readings.
  loadReadings(stationId, sessionId, readings) {
    const station = this.station(stationId);
    if (!station.session || station.session.id !== sessionId) return;
    const cutoff = nowS() - POWER_WINDOW_S;
    const stored = readings.filter((r) => r.ts >= cutoff).map((r) => [r.ts, r.w]);
    const newest = stored.length ? stored[stored.length - 1][0] : -Infinity;
    station.power = [...stored, ...station.power.filter((p) => p[0] > newest)];
    this.changed(stationId);
  }

  apply(message) {
    const handler = MESSAGE_HANDLERS[message.type];
    if (!handler) return;
    handler(this, message);
    const id = chargerIdOf(message);
    if (Number.isFinite(id) && this.stations.has(id) && message.type !== "error") this.stations.get(id).liveAtMs = Date.now();
  }

  // Seconds the open session has been running, ticking between metrics while connected.
  elapsed(station) {
    const session = station.session;
    if (!session) return null;
    if (typeof session.time === "number") {
      const ticking = this.connected && station.status === "cargando";
      return session.time + (ticking ? (Date.now() - session.timeAtMs) / 1000 : 0);
    }
    return session.startedAt ? nowS() - session.startedAt : null;
  }

  // True when the values shown for this station are not live.
  isStale(station) {
    if (!this.connected) return true;
    const session = station.session;
    if (session && station.status === "desconectado") return true; // charger offline: last known values
    return Boolean(
      session && station.status === "cargando" && session.lastMetricsMs &&
      Date.now() - session.lastMetricsMs > STALE_AFTER_MS,
    );
  }
}

function chargerIdOf(message) {
  const id = message.charger_id ?? message.estacionId;
  return typeof id === "number" ? id : Number.parseInt(id, 10);
}

function applyInit(store, message) {
  store.loaded = true;
  const chargers = Array.isArray(message.chargers) ? message.chargers : message.charger ? [message.charger] : [];
  for (const charger of chargers) {
    const station = store.station(charger.id);
    if (charger.name) station.name = charger.name;
    if (charger.tariff != null) station.tariff = charger.tariff;
    station.status = charger.status || "desconectado";
    station.liveAtMs = Date.now();
    station.session = sessionFrom(charger.session);
  }
  store.changed(null);
}

function applyStatus(store, message) {
  const id = chargerIdOf(message);
  if (!Number.isFinite(id) || typeof message.status !== "string") return;
  if (!store.stations.has(id)) store.dispatchEvent(new CustomEvent("stations-outdated")); // just added
  const station = store.station(id);
  if (station.status !== message.status) store.log(station, "event.status", { status: message.status });
  station.status = message.status;
  if (message.status === "emergencia" && !store.alerts.has(id)) {
    store.dispatchEvent(new CustomEvent("alerts-outdated")); // e.g. a fault reported by the charger
  }
  if (message.status === "disponible") station.session = null;
  store.changed(id);
}

function applyMetrics(store, message) {
  const id = chargerIdOf(message);
  if (!Number.isFinite(id)) return;
  const station = store.station(id);
  if (!station.session || station.session.id !== message.session_id) {
    station.session = sessionFrom({ session_id: message.session_id, user_name: station.session?.userName });
    station.power = [];
  }
  const session = station.session;
  Object.assign(session, { v: message.v, a: message.a, w: message.w, kwh: message.kwh, cost: message.cost });
  if (typeof message.time === "number") {
    session.time = message.time;
    session.timeAtMs = Date.now();
  }
  session.lastMetricsMs = Date.now();
  if (station.status !== "emergencia") station.status = "cargando";
  const t = nowS();
  station.power.push([t, message.w]);
  station.power = station.power.filter((p) => p[0] >= t - POWER_WINDOW_S);
  store.changed(id);
}

function applySessionStarted(store, message) {
  const id = chargerIdOf(message);
  if (!Number.isFinite(id)) return;
  const station = store.station(id);
  station.session = sessionFrom({ ...message, kwh: 0, cost: 0, time: 0 });
  station.power = [];
  station.status = "cargando";
  store.log(station, message.offline ? "event.startedOffline" : "event.started",
    { id: message.session_id, user: message.user_name ?? null }, "start");
  store.changed(id);
}

function applySessionEnded(store, message) {
  const id = chargerIdOf(message);
  if (!Number.isFinite(id)) return;
  const station = store.station(id);
  store.log(station, "event.ended", {
    id: message.session_id, kwh: message.kwh, cost: message.cost, duration: message.duration, reason: message.reason,
  }, "end");
  if (!station.session || station.session.id === message.session_id) station.session = null;
  if (station.status === "cargando") station.status = "disponible";
  store.changed(id);
}

// Alerts that warn about a bill (the charger keeps working) never hide one that stopped it.
const WARNING_KINDS = new Set(["energy_anomaly"]);

function isWarning(kind) {
  return WARNING_KINDS.has(kind);
}

// An alert pushed on the socket (`emergency`, or `alert` with its kind): the station's banner
// until an operator acknowledges it. Returns the station, or null for a message without one.
function raiseAlert(store, message, kind, logKey, logParams = {}) {
  const id = chargerIdOf(message);
  if (!Number.isFinite(id)) return null;
  const at = fmt.toUnixSeconds(message.timestamp) ?? nowS();
  const current = store.alerts.get(id);
  if (!(isWarning(kind) && current && !isWarning(current.kind))) store.alerts.set(id, { stationId: id, sessionId: message.session_id ?? null, at, kind, receivedMs: Date.now() });
  const station = store.station(id);
  store.log(station, logKey, logParams, "error");
  return station;
}

function applyEmergency(store, message) {
  const station = raiseAlert(store, message, "emergency", "event.emergency");
  if (!station) return;
  station.status = "emergencia";
  store.changed(station.id);
}

// The charger stopped charging by itself for a fault (kind `meter_failure` or `offline_limit`).
function applyAlert(store, message) {
  if (typeof message.kind !== "string") return;
  const station = raiseAlert(store, message, message.kind, "event.alert", { kind: message.kind, text: message.message });
  if (station) store.changed(station.id);
}

function applyAlertAcknowledged(store, message) {
  const id = chargerIdOf(message);
  if (!Number.isFinite(id)) return;
  store.alerts.delete(id);
  store.log(store.station(id), "event.acknowledged");
  store.changed(id);
}

function applyError(store, message) {
  if (message.request_id != null) return; // answered to the page's own request
  // refused taps come at most one per window; `repeats` counts those held back since the last
  const reply = { code: message.code ?? null, message: message.message, repeats: message.repeats };
  const id = chargerIdOf(message);
  if (Number.isFinite(id)) {
    store.log(store.station(id), "event.error", reply, "error");
    store.changed(id);
  }
  store.notice(explainError(reply), true, Number.isFinite(id) ? id : null, reply.code);
}

// The charger's answer to the page's remote start (OCPP): the session itself comes later.
function applyRemoteStart(store, message) {
  const id = message.station_id;
  if (!Number.isFinite(id)) return;
  const params = { uid: message.uid, status: message.status };
  store.log(store.station(id), "event.remoteStart", params, message.status === "Accepted" ? "info" : "error");
  store.changed(id);
  store.notice(t("event.remoteStart", params), message.status !== "Accepted", id, null);
}

// An over-the-air update's progress or the charger's running version (server/firmware.py).
function applyFirmware(store, message) {
  const id = chargerIdOf(message);
  if (!Number.isFinite(id)) return;
  const station = store.station(id);
  const before = station.firmware?.update;
  station.firmware = { fw: message.fw ?? null, update: message.update ?? null };
  const update = message.update;
  if (update && (before?.result !== update.result || before?.version !== update.version)) {
    const bad = ["refused", "rolled_back", "failed"].includes(update.result);
    store.log(station, "event.firmware", { version: update.version, result: update.result }, bad ? "error" : "info");
  }
  store.changed(id);
}

export const MESSAGE_HANDLERS = {
  firmware: applyFirmware,
  remote_start_result: applyRemoteStart,
  init: applyInit,
  status: applyStatus,
  metrics: applyMetrics,
  session_started: applySessionStarted,
  session_ended: applySessionEnded,
  emergency: applyEmergency,
  alert: applyAlert,
  alert_acknowledged: applyAlertAcknowledged,
  error: applyError,
};

// An event of a station's log as a sentence in the page's current language.
export function eventText(event) {
  const p = event.params;
  switch (event.key) {
    case "event.status":
      return t("event.status", { status: has(`status.${p.status}`) ? t(`status.${p.status}`) : p.status });
    case "event.started":
      return t("event.started", { id: p.id, user: p.user ?? t("event.unknownUser") });
    case "event.ended":
      return t("event.ended", {
        id: p.id, kwh: fmt.kwh(p.kwh), cost: fmt.cost(p.cost), duration: fmt.duration(p.duration),
        reason: p.reason && has(`reason.${p.reason}`) ? t(`reason.${p.reason}`) : p.reason ?? "—",
      });
    case "event.alert":
      return t("event.alert", { text: has(`alert.${p.kind}`) ? `${t(`alert.${p.kind}`).replace(/ (en|at|por|by)$/, "")}` : p.text ?? p.kind });
    case "event.error":
      return explainError(p);
    case "event.firmware":
      return t("event.firmware", { version: p.version, result: has(`firmware.result.${p.result}`) ? t(`firmware.result.${p.result}`) : p.result });
    default:
      return t(event.key, p);
  }
}
