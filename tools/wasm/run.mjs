// Runs MicroPython scripts on the 32-bit WebAssembly port (wasm32), several fresh interpreters
// in one Node process. Owned by tools/wasm32.py, which writes the job; not meant to be typed.
//
//   node tools/wasm/run.mjs < job.json
//
// job: {"files": {"/abs/path/in/the/port": "<base64>", ...},
//       "runs": [{"heapsize": bytes, "path": ["", "sim", ...], "cwd": "/", "argv": [...],
//                 "code": "python source" or ["phase 1 source", "phase 2 source", ...]}, ...]}
// Every run gets a new interpreter (its own heap, its own qstr pool) with the same files in
// its in-memory file system. Phases run one after the other in the same interpreter (same
// globals), each returning to JavaScript: only there does this port really collect garbage
// (its gc.collect() merely asks for a collection once Python returns, since a wasm stack
// cannot be scanned), so a measurement must collect in one phase and read in the next. Output: each run's stdout and stderr, then a line
// "\x01END <index> <exit status>" (0 ok, 1 uncaught exception, whose message goes to stdout
// first). The exit status of the process is 0 when it could run every job.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "node_modules", "@micropython", "micropython-webassembly-pyscript",
                 "micropython.mjs");
let loadMicroPython;
try {
  ({ loadMicroPython } = await import(pkg));
} catch (err) {
  process.stderr.write("the 32-bit MicroPython is not installed: run `npm ci` in tools/wasm"
                       + ` (${err.code || err.message})\n`);
  process.exit(3);
}

const job = JSON.parse(readFileSync(0, "utf8"));
const out = (line) => process.stdout.write(line + "\n");

function writeFiles(FS, files) {
  for (const [path, b64] of Object.entries(files)) {
    const parts = path.split("/").filter(Boolean);
    let dir = "";
    for (const part of parts.slice(0, -1)) {
      dir += "/" + part;
      try { FS.mkdir(dir); } catch { /* exists */ }
    }
    FS.writeFile(path, Buffer.from(b64, "base64"));
  }
}

for (let i = 0; i < job.runs.length; i++) {
  const run = job.runs[i];
  const mp = await loadMicroPython({ heapsize: run.heapsize || 1024 * 1024, stdout: out,
                                     stderr: out });
  writeFiles(mp.FS, job.files || {});
  if (run.cwd) mp.FS.chdir(run.cwd);
  let status = 0;
  try {
    // sys.path and sys.argv as the unix port would set them from MICROPYPATH and its arguments
    mp.runPython("import sys\nsys.path[:] = " + JSON.stringify(run.path || [""])
                 + "\nsys.argv[:] = " + JSON.stringify(run.argv || [""]) + "\ndel sys\n");
    for (const phase of Array.isArray(run.code) ? run.code : [run.code]) mp.runPython(phase);
  } catch (err) {
    if (err.name !== "PythonError") throw err;
    if (err.type !== "SystemExit") {
      out(err.message.replace(/\n$/, ""));
      status = 1;
    }
  }
  out("\x01END " + i + " " + status);
}
