// esbuild `inject`: the bundled libraries' free references to TextEncoder/TextDecoder
// (whatwg-url's lib/encoding.js) resolve to ours; the bundle has no globals of its own.
export { TextDecoder, TextEncoder } from "./encoding.js";
