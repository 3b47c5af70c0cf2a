// js-base64: UTF-8 text to Base64 and back (TextEncoder/TextDecoder and btoa/atob when
// present; js-base64 carries polyfills of its own otherwise).
import { Base64 } from "js-base64";

export default {
  encode(text, urlSafe = false) {
    return Base64.encode(text, urlSafe);
  },
  decode(b64) {
    return Base64.decode(b64);
  },
  bytes(b64) {
    return Array.from(Base64.toUint8Array(b64));
  },
  fromBytes(bytes) {
    return Base64.fromUint8Array(new Uint8Array(bytes));
  },
  isValid(text) {
    return Base64.isValid(text);
  },
};
