"""The link's settings, read from the config dict and checked once, when the Link is built.

Owns the publisher URLs (`server_url?role=publisher&estacionId=N&token=T`, the token
percent-encoded; one per entry of `server_urls` when the config lists several servers; `parse_url()` splits a ws:// or wss:// URL into what WebSocket.connect()
takes), the link's timing keys with their defaults and ranges, and the receive bound
`max_message`. A clear ValueError names the bad key. `Link()` loads this module and forgets
it right after (issue 3: its code and string constants, ~3 KB, go back to the heap; only its
few identifiers stay interned). The URL is parsed here, once, so the code that runs at every
reconnect (charger/wsopen.py) stays small.
"""


def settings(cfg):
    """(dial, ms, ws) for the Link: dial = (dests, ca_cert, connect timeout ms), dests a
    list of parse_url() results, one per server URL (`server_urls`, else `server_url`), each
    with WebSocket.connect()'s other two arguments; ms = (backoff min, backoff max, WiFi timeout, ack
    timeout) in ms; ws = (max_message, ping interval ms, ping timeout ms), the arguments of
    WebSocket()."""
    station = cfg.get("station")
    if isinstance(station, bool) or not isinstance(station, int) or station < 1:
        raise ValueError("station must be a positive integer")
    token = cfg.get("token") or ""
    if not isinstance(token, str):
        raise ValueError("token must be a string")
    if token:  # percent-encoded: RFC 3986 unreserved characters stay. Built as bytes: a
        # one-character str (chr(), s[i]) is interned for good, one name per distinct character
        out = bytearray(b"&token=")
        for c in token.encode():
            if 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c in b"-._~":
                out.append(c)
            else:
                out.extend(b"%%%02X" % c)
        token = out.decode()
    dest = []
    for url in cfg.get("server_urls") or (cfg.get("server_url") or "",):
        url = (
            "%s&role=publisher&estacionId=%d%s"
            if "?" in url
            else "%s?role=publisher&estacionId=%d%s"
        ) % (url, station, token)
        dest.append(parse_url(url))  # parsed once: ValueError now, not at every reconnect
    ms = []
    for key, default, lo, hi in (
        ("ping_interval_s", 10, 0.05, 3600),
        ("ping_timeout_s", 5, 0.05, 3600),
        ("backoff_min_s", 1, 0.01, 3600),
        ("backoff_max_s", 30, 0.01, 3600),
        ("connect_timeout_s", 10, 0.1, 600),
        ("wifi_timeout_s", 20, 0.1, 600),
        ("ack_timeout_s", 30, 0.1, 3600),
    ):
        val = cfg.get(key)
        if val is None:
            val = default
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not lo <= val <= hi:
            raise ValueError("%s must be a number from %s to %s" % (key, lo, hi))
        ms.append(int(val * 1000))
    if ms[3] < ms[2]:
        raise ValueError("backoff_max_s must not be below backoff_min_s")
    size = cfg.get("max_message")
    if size is None:
        size = 1024  # the server's messages to a charger are a few hundred bytes at most
    if isinstance(size, bool) or not isinstance(size, int) or not 128 <= size <= 65536:
        raise ValueError("max_message must be a whole number from 128 to 65536")
    return (dest, cfg.get("ca_cert"), ms[4]), (ms[2], ms[3], ms[5], ms[6]), (size, ms[0], ms[1])


def parse_url(url):
    """Split a ws:// or wss:// URL into (host, port, resource, secure); ValueError if bad."""
    secure = url.startswith("wss://")
    if not secure and not url.startswith("ws://"):
        raise ValueError("URL must start with ws:// or wss://: %r" % url)
    rest = url[6 if secure else 5 :]
    cut = len(rest)
    for sep in "/?":
        i = rest.find(sep)
        if 0 <= i < cut:
            cut = i
    host = rest[:cut]
    port = 443 if secure else 80
    try:
        if ":" in host:
            host, _, port = host.rpartition(":")
            port = int(port)
        if not host or " " in url or not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise ValueError("bad host or port in URL: %r" % url)
    rest = rest[cut:]
    return host, port, rest if rest[:1] == "/" else "/" + rest, secure
