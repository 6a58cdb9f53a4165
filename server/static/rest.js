// GET helpers for the dashboard's HTTP JSON API.

export class ApiFailure extends Error {}

export async function getJson(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" } });
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
