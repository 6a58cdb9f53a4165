// GET helpers for the dashboard's HTTP JSON API (with the dashboard's token, see token.js).

import { explainError } from "./explain.js";
import { t } from "./i18n.js";
import { dashboardToken } from "./token.js";

export class ApiFailure extends Error {}

export async function getJson(path) {
  let response;
  try {
    const token = dashboardToken();
    const headers = { Accept: "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) };
    response = await fetch(path, { headers });
  } catch {
    throw new ApiFailure(t("api.unreachable"));
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    // a sentence for a known code (404 NOT_FOUND, ...); the server's words otherwise
    throw new ApiFailure(body?.code ? explainError(body) : body?.message ?? t("api.status", { status: response.status }));
  }
  return body;
}
