// The page's language: Spanish by default, English on request, remembered in localStorage.
// t(key, params) looks a text up in strings.js (a string, or a function of params for texts
// with numbers or names in them); a missing key falls back to Spanish, then to the key itself.
// Listeners of "language" (on `languageEvents`) re-render when the operator switches.

import { STRINGS } from "./strings.js";

export const LANGUAGES = ["es", "en"];
const DEFAULT_LANGUAGE = "es";
const STORAGE_KEY = "evse-dashboard-lang";

export const languageEvents = new EventTarget();

function stored() {
  try {
    const value = window.localStorage.getItem(STORAGE_KEY);
    return LANGUAGES.includes(value) ? value : null;
  } catch {
    return null; // storage blocked: the default language
  }
}

let current = stored() ?? DEFAULT_LANGUAGE;

export function language() {
  return current;
}

// The BCP 47 tag for Intl (numbers and dates); the time zone is always the browser's own.
export function locale() {
  return current;
}

export function setLanguage(next) {
  if (!LANGUAGES.includes(next) || next === current) return;
  current = next;
  try {
    window.localStorage.setItem(STORAGE_KEY, next);
  } catch {
    // remembered for this page only
  }
  document.documentElement.lang = next;
  languageEvents.dispatchEvent(new CustomEvent("language", { detail: { language: next } }));
}

export function t(key, params = {}) {
  const entry = STRINGS[current]?.[key] ?? STRINGS[DEFAULT_LANGUAGE][key];
  if (entry === undefined) return key;
  return typeof entry === "function" ? entry(params) : entry;
}

// True when `key` has a text (to tell a known status word or code from an unknown one).
export function has(key) {
  return STRINGS[DEFAULT_LANGUAGE][key] !== undefined;
}
