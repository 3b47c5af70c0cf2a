// Records what Node.js (20) gives for every case in cases.js:
//   node tests/webapi/make_fixtures.mjs > tests/webapi/fixtures.json
// tests/test_webapi.py runs the same cases in the sandbox and compares.
import { readFileSync } from "node:fs";
import { runInThisContext } from "node:vm";

// An exception thrown by an event listener is reported, not thrown to dispatchEvent(); Node
// reports it as an uncaught exception (which would end this script), the sandbox as an
// ignored rejection: either way the dispatcher and later listeners go on.
process.on("uncaughtException", () => {});
process.emitWarning = () => {};

const source = readFileSync(new URL("./cases.js", import.meta.url), "utf8");
runInThisContext(source, { filename: "cases.js" });
const results = {};
const keepAlive = setInterval(() => {}, 1000);  // AbortSignal.timeout's timer does not hold the process
for (const [name, fn] of globalThis.WEBAPI_CASES) {
  try {
    results[name] = { ok: JSON.parse(JSON.stringify((await fn()) ?? null)) };
  } catch (e) {
    results[name] = { threw: String(e && e.name) };
  }
}
clearInterval(keepAlive);
process.stdout.write(JSON.stringify({ node: process.version, results }, null, 1) + "\n");
