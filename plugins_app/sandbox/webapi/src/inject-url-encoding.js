// esbuild `inject` for the URL script (url.js): whatwg-url's TextEncoder/TextDecoder are the
// main bundle's, handed over as the parameter `__plugins_text` when lazy.js compiles it.
/* global __plugins_text */
export const TextEncoder = __plugins_text.TextEncoder;
export const TextDecoder = __plugins_text.TextDecoder;
