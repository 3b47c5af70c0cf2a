// The web APIs of the plugin sandbox, bundled by build.mjs into dist/webapi.js.
//
// The bundle runs once, in the V8 snapshot builder (snapshot.py), before any plugin code
// exists: its classes and tables (URL's IDNA mapping table...) are made there and restored
// with every runtime. It leaves one global, __plugins_webapi, which the bootstrap
// (bootstrap.js) captures and deletes; install() then defines the documented globals on
// the runtime's global object (writable and configurable, as in Node.js and browsers, so a
// plugin's own top-level `const URL = ...` shadows them) and returns what the bootstrap's
// run loop needs: the timer controls and nothing else.
import { defineLazyGlobal, setUrlSource } from "./lazy.js";
import { DOMException } from "./domexception.js";
import { atob, btoa, TextDecoder, TextEncoder } from "./encoding.js";
import { crypto, Crypto, CryptoKey, setRandomSource, SubtleCrypto } from "./crypto.js";
import { AbortController, AbortSignal, Event, EventTarget } from "./events.js";
import { performance, Performance, resetPerformance } from "./performance.js";
import { cancelAll, clearInterval, clearTimeout, fireNext, hasTimers, msUntilNext, setInterval, setTimeout } from "./timers.js";
import { structuredClone } from "./clone.js";
import { captureLate, define, freeze } from "./intrinsics.js";

const GLOBALS = {
  __proto__: null,
  TextEncoder, TextDecoder, URL: null, URLSearchParams: null, atob, btoa, structuredClone,
  crypto, Crypto, CryptoKey, SubtleCrypto, DOMException, Event, EventTarget, AbortController, AbortSignal,
  performance, Performance, setTimeout, clearTimeout, setInterval, clearInterval,
};
// The names install() defines, for the bootstrap's allowlist check (worker.GLOBALS).
const NAMES = freeze(Object.keys(GLOBALS));
const ENUMERABLE = { __proto__: null, crypto: true, performance: true, setTimeout: true, clearTimeout: true, setInterval: true, clearInterval: true, atob: true, btoa: true, structuredClone: true };

// `randomBytes(n)`: a Uint8Array of n fresh bytes from the sandbox process's os.urandom.
const install = (global, randomBytes, urlSource) => {
  captureLate();
  setRandomSource(randomBytes);
  setUrlSource(urlSource);
  resetPerformance();
  cancelAll();
  for (let i = 0; i < NAMES.length; i++) {
    const name = NAMES[i];
    if (GLOBALS[name] === null) defineLazyGlobal(global, name);
    else define(global, name, { value: GLOBALS[name], writable: true, enumerable: ENUMERABLE[name] === true, configurable: true });
  }
  return freeze({ __proto__: null, hasTimers, msUntilNext, fireNext, cancelAll });
};

define(globalThis, "__plugins_webapi", {
  value: freeze({ __proto__: null, install, names: NAMES }),
  writable: false, enumerable: false, configurable: true,
});
