// URL and URLSearchParams: whatwg-url (jsdom's reference implementation of the WHATWG URL
// Standard, with tr46 for IDNA). Built by build.mjs into a separate script, dist/url.js,
// that the worker hands to a runtime the first time a plugin touches URL or
// URLSearchParams (see lazy.js): its IDNA tables would otherwise triple the snapshot every
// runtime is restored from (measured 0.65 -> 2.6 MB, +3.6 MiB RSS per runtime), and even
// kept there as a string they cost every runtime ~0.6 MiB.
export { URL, URLSearchParams } from "whatwg-url";
