// @noble/hashes: SHA-2 and HMAC in pure JavaScript; text goes through TextEncoder
// (utf8ToBytes) and randomBytes through crypto.getRandomValues.
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { bytesToHex, utf8ToBytes, randomBytes } from "@noble/hashes/utils.js";

export default {
  sha256(text) {
    return bytesToHex(sha256(utf8ToBytes(text)));
  },
  sha512(text) {
    return bytesToHex(sha512(utf8ToBytes(text)));
  },
  hmacSha256(key, text) {
    return bytesToHex(hmac(sha256, utf8ToBytes(key), utf8ToBytes(text)));
  },
  random(n) {
    return Array.from(randomBytes(n));
  },
};
