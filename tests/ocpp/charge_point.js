// A charge point for the tests, built on ocpp-rpc (an OCPP-J implementation nobody here wrote,
// strict schema validation of every call and answer in both directions).
// Driven by JSON lines on stdin, answers JSON lines on stdout:
//   {"connect": {"endpoint": "ws://127.0.0.1:PORT/ocpp", "identity": "CP-1", "password": "KEY"|null,
//                "protocols": ["ocpp1.6"]}}      -> {"connected": true} | {"refused": STATUS|null, "message": "..."}
//   {"call": "Action", "params": {...}}            -> {"result": {...}} | {"error": "...", "code": "..."}
//   {"close": true}                                -> {"closed": true}
//   {"answer": "Action", "with": {...}}             -> {"answering": "Action"}: how to answer that call next
// A call from the server is printed as {"received": "Action", "params": {...}} and answered:
// RemoteStopTransaction, RemoteStartTransaction, TriggerMessage Accepted (unless told otherwise);
// GetConfiguration/ChangeConfiguration from a configuration kept here (MeterValueSampleInterval
// read-write, starting at 60).
'use strict';
const readline = require('readline');
const { RPCClient } = require('ocpp-rpc');

let client = null;
const answers = {};  // Action -> the answer set by {"answer": ...}
const configuration = { MeterValueSampleInterval: '60' };
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

async function handle(line) {
    const msg = JSON.parse(line);
    if (msg.connect) {
        const opts = msg.connect;
        client = new RPCClient({
            endpoint: opts.endpoint,
            identity: opts.identity,
            password: opts.password == null ? undefined : opts.password,
            protocols: opts.protocols,
            strictMode: opts.protocols && opts.protocols.length > 0,
            reconnect: false,
            callTimeoutMs: 20000,
        });
        for (const action of ['RemoteStopTransaction', 'RemoteStartTransaction', 'TriggerMessage']) {
            client.handle(action, ({ params }) => {
                out({ received: action, params });
                return answers[action] || { status: 'Accepted' };
            });
        }
        client.handle('GetConfiguration', ({ params }) => {
            out({ received: 'GetConfiguration', params });
            const keys = params.key && params.key.length ? params.key : Object.keys(configuration);
            return {
                configurationKey: keys.filter((k) => k in configuration)
                    .map((k) => ({ key: k, readonly: false, value: configuration[k] })),
                unknownKey: keys.filter((k) => !(k in configuration)),
            };
        });
        client.handle('ChangeConfiguration', ({ params }) => {
            out({ received: 'ChangeConfiguration', params });
            if (!(params.key in configuration)) return { status: 'NotSupported' };
            configuration[params.key] = params.value;
            return { status: 'Accepted' };
        });
        try {
            await client.connect();
            out({ connected: true, protocol: client.protocol || null });
        } catch (err) {
            out({ refused: (typeof err.code === "number" ? err.code : null), message: String(err.message || err) });
        }
    } else if (msg.call) {
        try {
            out({ result: await client.call(msg.call, msg.params || {}) });
        } catch (err) {
            out({ error: String(err.message || err), code: err.rpcErrorCode || null });
        }
    } else if (msg.answer) {
        answers[msg.answer] = msg.with;
        out({ answering: msg.answer });
    } else if (msg.close) {
        if (client) await client.close({ code: 1000, awaitPending: false });
        out({ closed: true });
    }
}

const lines = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
lines.on('line', (line) => { chain = chain.then(() => handle(line)).catch((e) => out({ crash: String(e && e.stack || e) })); });
lines.on('close', () => { chain.then(async () => { if (client) await client.close({ force: true }).catch(() => {}); process.exit(0); }); });
