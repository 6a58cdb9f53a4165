// GET helpers for the dashboard's HTTP JSON API (with the dashboard's token, see token.js).

import { dashboardToken } from "./token.js";

export class ApiFailure extends Error {}

export async function getJson(path) {
  let response;
  try {
    const token = dashboardToken();
    const headers = { Accept: "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) };
    response = await fetch(path, { headers });
  } catch {
    throw new ApiFailure("The server cannot be reached");
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiFailure(body?.message ?? `The server answered ${response.status}`);
  }
  return body;
}
