// TextEncoder / TextDecoder (WHATWG Encoding, UTF-8 only), on deno_core's native UTF-8 ops
// (core.encode / core.decode: V8's own encoder and WHATWG-conformant decoder). What is
// hand-written here is the API surface: labels, the fatal and ignoreBOM options, streaming
// (an incomplete sequence at the end of a chunk waits for the next) and encodeInto.
import {
  apply, bytesOf, charCodeAt, define, freeze, latin1Decode, RangeErrorCtor, StringCtor, stringSlice, SymbolToStringTag,
  taIndexOf, taSet, taSubarray, toLowerCase, TypeErrorCtor, Uint8ArrayCtor, utf8Decode, utf8Encode, WeakMapCtor, wmGet, wmHas, wmSet,
} from "./intrinsics.js";

const LABELS = { __proto__: null, "unicode-1-1-utf-8": 1, unicode11utf8: 1, unicode20utf8: 1, "utf-8": 1, utf8: 1, "x-unicode20utf8": 1 };
const trimAscii = /^[\t\n\f\r ]+|[\t\n\f\r ]+$/g;
const replace = String.prototype.replace;

export class TextEncoder {
  get encoding() { return "utf-8"; }

  encode(input = "") {
    return utf8Encode(`${input}`);
  }

  encodeInto(source, destination) {
    source = `${source}`;
    if (!(destination instanceof Uint8ArrayCtor)) throw new TypeErrorCtor('The "dest" argument must be an instance of Uint8Array.');
    const length = destination.length;
    let read = 0, written = 0;
    const n = source.length;
    while (read < n) {
      let c = apply(charCodeAt, source, [read]);
      let units = 1;
      if (c >= 0xd800 && c <= 0xdbff && read + 1 < n) {
        const d = apply(charCodeAt, source, [read + 1]);
        if (d >= 0xdc00 && d <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); units = 2; }
      }
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;  // a lone surrogate
      const size = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
      if (written + size > length) break;
      if (size === 1) destination[written] = c;
      else if (size === 2) { destination[written] = 0xc0 | (c >> 6); destination[written + 1] = 0x80 | (c & 63); }
      else if (size === 3) {
        destination[written] = 0xe0 | (c >> 12); destination[written + 1] = 0x80 | ((c >> 6) & 63); destination[written + 2] = 0x80 | (c & 63);
      } else {
        destination[written] = 0xf0 | (c >> 18); destination[written + 1] = 0x80 | ((c >> 12) & 63);
        destination[written + 2] = 0x80 | ((c >> 6) & 63); destination[written + 3] = 0x80 | (c & 63);
      }
      written += size;
      read += units;
    }
    return { read, written };
  }
}
define(TextEncoder.prototype, SymbolToStringTag, { value: "TextEncoder", configurable: true });

const decoders = new WeakMapCtor();
const stateOf = (self) => {
  if (self === null || typeof self !== "object" || !apply(wmHas, decoders, [self])) {
    throw new TypeErrorCtor('Value of "this" must be of type TextDecoder');
  }
  return apply(wmGet, decoders, [self]);
};

// Length of the tail of `bytes` that is a valid but incomplete UTF-8 sequence (0 if none):
// it is kept for the next chunk when streaming.
const incompleteTail = (bytes) => {
  const n = bytes.length;
  for (let back = 1; back <= 3 && back <= n; back++) {
    const lead = bytes[n - back];
    if (lead < 0x80) return 0;
    if (lead < 0xc0) continue;  // a continuation byte: look further back
    const need = lead >= 0xc2 && lead <= 0xdf ? 1 : lead >= 0xe0 && lead <= 0xef ? 2 : lead >= 0xf0 && lead <= 0xf4 ? 3 : 0;
    if (need === 0 || back - 1 >= need) return 0;
    if (back >= 2) {
      const second = bytes[n - back + 1];
      const lo = lead === 0xe0 ? 0xa0 : lead === 0xf0 ? 0x90 : 0x80;
      const hi = lead === 0xed ? 0x9f : lead === 0xf4 ? 0x8f : 0xbf;
      if (second < lo || second > hi) return 0;
    }
    return back;
  }
  return 0;
};

// How many U+FFFD the bytes hold as real, well-formed EF BF BD sequences.
const countReplacement = (bytes) => {
  let count = 0, at = apply(taIndexOf, bytes, [0xef]);
  while (at !== -1 && at + 2 < bytes.length) {
    if (bytes[at + 1] === 0xbf && bytes[at + 2] === 0xbd) count++;
    at = apply(taIndexOf, bytes, [0xef, at + 1]);
  }
  return count;
};
const countChar = (text, code) => {
  let count = 0;
  for (let i = 0; i < text.length; i++) if (apply(charCodeAt, text, [i]) === code) count++;
  return count;
};

export class TextDecoder {
  constructor(label = "utf-8", options = {}) {
    const name = apply(toLowerCase, apply(replace, `${label}`, [trimAscii, ""]), []);
    if (LABELS[name] !== 1) {
      const e = new RangeErrorCtor(`The "${label}" encoding is not supported`);
      define(e, "code", { value: "ERR_ENCODING_NOT_SUPPORTED", writable: true, configurable: true, enumerable: false });
      throw e;
    }
    if (options !== undefined && options !== null && typeof options !== "object" && typeof options !== "function") {
      throw new TypeErrorCtor('The "options" argument must be of type object.');
    }
    const fatal = options == null ? false : !!options.fatal;
    const ignoreBOM = options == null ? false : !!options.ignoreBOM;
    apply(wmSet, decoders, [this, { fatal, ignoreBOM, pending: null, bomSeen: false }]);
  }

  get encoding() { stateOf(this); return "utf-8"; }

  get fatal() { return stateOf(this).fatal; }

  get ignoreBOM() { return stateOf(this).ignoreBOM; }

  decode(input = undefined, options = undefined) {
    const state = stateOf(this);
    let bytes;
    if (input === undefined) bytes = new Uint8ArrayCtor(0);
    else {
      bytes = bytesOf(input);
      if (bytes === null) {
        throw new TypeErrorCtor('The "input" argument must be an instance of ArrayBuffer or ArrayBufferView.');
      }
    }
    const stream = options !== undefined && options !== null && !!options.stream;
    if (state.pending !== null) {
      const joined = new Uint8ArrayCtor(state.pending.length + bytes.length);
      apply(taSet, joined, [state.pending]);
      apply(taSet, joined, [bytes, state.pending.length]);
      bytes = joined;
      state.pending = null;
    }
    if (stream) {
      const tail = incompleteTail(bytes);
      if (tail > 0) {
        state.pending = apply(taSubarray, bytes, [bytes.length - tail]);
        state.pending = new Uint8ArrayCtor(state.pending);  // a copy: the caller may reuse its buffer
        bytes = apply(taSubarray, bytes, [0, bytes.length - tail]);
      }
    }
    const hasBOM = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
    let text = utf8Decode(bytes);  // strips a leading BOM
    if (hasBOM && (state.ignoreBOM || state.bomSeen)) text = "\ufeff" + text;
    if (state.fatal && countChar(text, 0xfffd) !== countReplacement(bytes)) {
      state.pending = null;
      state.bomSeen = false;
      const e = new TypeErrorCtor("The encoded data was not valid for encoding utf-8");
      define(e, "code", { value: "ERR_ENCODING_INVALID_ENCODED_DATA", writable: true, configurable: true, enumerable: false });
      throw e;
    }
    if (text.length > 0 || hasBOM) state.bomSeen = true;
    if (!stream) { state.bomSeen = false; state.pending = null; }
    return text;
  }
}
define(TextDecoder.prototype, SymbolToStringTag, { value: "TextDecoder", configurable: true });
for (const name of ["encoding", "fatal", "ignoreBOM"]) {
  const desc = Object.getOwnPropertyDescriptor(TextDecoder.prototype, name);
  desc.enumerable = true;
  define(TextDecoder.prototype, name, desc);
}
{
  const desc = Object.getOwnPropertyDescriptor(TextEncoder.prototype, "encoding");
  desc.enumerable = true;
  define(TextEncoder.prototype, "encoding", desc);
}

// -- atob / btoa (HTML's forgiving-base64), decoding with V8's Uint8Array.fromBase64 ---------
import { domException } from "./domexception.js";
import { fromBase64, toBase64 } from "./intrinsics.js";

const missing = (name) => {
  const e = new TypeErrorCtor(`The "${name}" argument must be specified`);
  define(e, "code", { value: "ERR_MISSING_ARGS", writable: true, configurable: true, enumerable: false });
  return e;
};

export function btoa(data) {
  if (arguments.length === 0) throw missing("input");
  data = `${data}`;
  const n = data.length;
  const bytes = new Uint8ArrayCtor(n);
  for (let i = 0; i < n; i++) {
    const c = apply(charCodeAt, data, [i]);
    if (c > 0xff) throw domException("Invalid character", "InvalidCharacterError");
    bytes[i] = c;
  }
  return apply(toBase64, bytes, []);
}

export function atob(data) {
  if (arguments.length === 0) throw missing("input");
  data = `${data}`;
  let significant = 0, equals = 0;
  const n = data.length;
  for (let i = 0; i < n; i++) {
    const c = apply(charCodeAt, data, [i]);
    if (c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d || c === 0x20) continue;
    const alphabet = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2f;
    if (c === 0x3d) {
      significant++;
      equals++;
      if (equals > 2) throw domException("Invalid character", "InvalidCharacterError");
    } else if (alphabet) {
      if (equals) throw domException("Invalid character", "InvalidCharacterError");
      significant++;
    } else {
      throw domException("Invalid character", "InvalidCharacterError");
    }
  }
  let rest = significant % 4;
  if (!rest) rest = (significant - equals) % 4;
  else if (equals) throw domException("Invalid character", "InvalidCharacterError");
  if (rest === 1) throw domException("The string to be decoded is not correctly encoded.", "InvalidCharacterError");
  // Padding and whitespace checked above; V8 decodes what is left (loose: padding optional,
  // non-zero trailing bits ignored, as forgiving-base64 says).
  let clean = "";
  for (let i = 0; i < n; i++) {
    const c = apply(charCodeAt, data, [i]);
    if (c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d || c === 0x20 || c === 0x3d) continue;
    clean += data[i];
  }
  return latin1Decode(fromBase64(clean, { __proto__: null, lastChunkHandling: "loose" }));
}
