// The dashboard's credential (docs/security.md): the token of the page URL (`/?token=...`, as
// `make run` prints it) is kept in this tab's sessionStorage and removed from the address bar,
// so it does not linger in the history or a shared screenshot. Every WebSocket URL and API
// request carries it.

const STORAGE_KEY = "evse-dashboard-token";

export function dashboardToken(win = window) {
  const params = new URLSearchParams(win.location.search);
  const fromUrl = params.get("token");
  if (fromUrl) {
    win.sessionStorage.setItem(STORAGE_KEY, fromUrl);
    params.delete("token");
    const query = params.toString();
    win.history.replaceState(null, "", `${win.location.pathname}${query ? `?${query}` : ""}${win.location.hash}`);
  }
  return win.sessionStorage.getItem(STORAGE_KEY) ?? "";
}
