// Web Crypto, the safe subset: crypto.getRandomValues / randomUUID from the sandbox
// process's os.urandom (through a function the bootstrap hands over, see setRandomSource),
// and crypto.subtle digest (SHA-1/256/384/512) and HMAC (importKey raw/jwk, exportKey,
// generateKey, sign, verify) computed by @noble/hashes (audited, widely used). The WebIDL
// surface (CryptoKey, algorithm normalisation, DOMException names) is hand-written after
// the Web Crypto spec and Node.js 20's behaviour.
import { hmac } from "@noble/hashes/hmac.js";
import { sha1 } from "@noble/hashes/legacy.js";
import { sha256, sha384, sha512 } from "@noble/hashes/sha2.js";
import { domException } from "./domexception.js";
import {
  apply, copyBytes, create, define, defineProperties, freeze, isArray, PromiseCtor, StringCtor, SymbolToStringTag,
  taSet, taSlice, toLowerCase, TypeErrorCtor, typedArrayTag, Uint8ArrayCtor, WeakMapCtor, wmGet, wmHas, wmSet, bytesOf,
  fromBase64, toBase64,
} from "./intrinsics.js";

// -- randomness ------------------------------------------------------------------------------
const POOL_SIZE = 4096;
const MAX_RANDOM_BYTES = 65536;
let randomSource = null;  // set per runtime by install(): n -> Uint8Array of n bytes from os.urandom
let pool = null, poolAt = 0;

export const setRandomSource = (source) => { randomSource = source; pool = null; poolAt = 0; };

// Fills `target` (a Uint8Array) with fresh random bytes; every byte is used once.
const fillRandom = (target) => {
  const n = target.length;
  if (n === 0) return;
  if (randomSource === null) throw domException("randomness is not available here", "OperationError");
  if (n > POOL_SIZE) {
    apply(taSet, target, [randomSource(n)]);
    return;
  }
  if (pool === null || poolAt + n > POOL_SIZE) { pool = randomSource(POOL_SIZE); poolAt = 0; }
  for (let i = 0; i < n; i++) { target[i] = pool[poolAt + i]; pool[poolAt + i] = 0; }
  poolAt += n;
};

const INTEGER_ARRAYS = { __proto__: null, Int8Array: 1, Uint8Array: 1, Uint8ClampedArray: 1, Int16Array: 1, Uint16Array: 1, Int32Array: 1, Uint32Array: 1, BigInt64Array: 1, BigUint64Array: 1 };

function getRandomValues(array) {
  if (arguments.length === 0) throw new TypeErrorCtor('The "typedArray" argument must be specified');
  const tag = typedArrayTag(array);
  if (tag === undefined || INTEGER_ARRAYS[tag] !== 1) {
    throw domException("The data argument must be an integer-type TypedArray", "TypeMismatchError");
  }
  const bytes = bytesOf(array);
  if (bytes.length > MAX_RANDOM_BYTES) {
    throw domException("The requested length exceeds 65,536 bytes", "QuotaExceededError");
  }
  fillRandom(bytes);
  return array;
}

const HEX = "0123456789abcdef";
function randomUUID() {
  const b = new Uint8ArrayCtor(16);
  fillRandom(b);
  b[6] = (b[6] & 0x0f) | 0x40;  // version 4
  b[8] = (b[8] & 0x3f) | 0x80;  // variant 10
  let s = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
    s += HEX[b[i] >> 4] + HEX[b[i] & 15];
  }
  return s;
}

// -- algorithms ------------------------------------------------------------------------------
const HASHES = {
  __proto__: null,
  "sha-1": { name: "SHA-1", fn: sha1, block: 512 },
  "sha-256": { name: "SHA-256", fn: sha256, block: 512 },
  "sha-384": { name: "SHA-384", fn: sha384, block: 1024 },
  "sha-512": { name: "SHA-512", fn: sha512, block: 1024 },
};

const algorithmName = (algorithm) => {
  if (typeof algorithm === "string") return algorithm;
  if (algorithm !== null && typeof algorithm === "object") {
    const name = algorithm.name;
    if (name === undefined) throw new TypeErrorCtor("Algorithm: name: Missing or not a string");
    return `${name}`;
  }
  throw new TypeErrorCtor("Algorithm: name: Missing or not a string");
};
const notSupported = () => domException("Unrecognized algorithm name", "NotSupportedError");
const hashOf = (algorithm) => {
  const entry = HASHES[apply(toLowerCase, algorithmName(algorithm), [])];
  if (entry === undefined) throw notSupported();
  return entry;
};
const bufferSource = (value, what) => {
  const bytes = copyBytes(value);
  if (bytes === null) throw new TypeErrorCtor(`Failed to execute '${what}' on 'SubtleCrypto': parameter is not of type 'BufferSource'.`);
  return bytes;
};
const arrayBufferOf = (bytes) => {
  const out = new Uint8ArrayCtor(bytes.length);
  apply(taSet, out, [bytes]);
  return out.buffer;
};

// -- CryptoKey -------------------------------------------------------------------------------
const keys = new WeakMapCtor();  // CryptoKey -> { type, extractable, algorithm, usages, bytes }
const keyState = (key) => {
  if (key === null || typeof key !== "object" || !apply(wmHas, keys, [key])) {
    throw new TypeErrorCtor('The "key" argument must be an instance of CryptoKey.');
  }
  return apply(wmGet, keys, [key]);
};
let constructing = false;

export class CryptoKey {
  constructor() {
    if (!constructing) throw new TypeErrorCtor("Illegal constructor");
  }

  get type() { return keyState(this).type; }

  get extractable() { return keyState(this).extractable; }

  get algorithm() { return keyState(this).algorithm; }

  get usages() { return copyList(keyState(this).usages); }
}
defineProperties(CryptoKey.prototype, {
  [SymbolToStringTag]: { value: "CryptoKey", configurable: true },
  type: { enumerable: true }, extractable: { enumerable: true }, algorithm: { enumerable: true }, usages: { enumerable: true },
});

const copyList = (list) => {
  const out = [];
  for (let i = 0; i < list.length; i++) define(out, i, { value: list[i], writable: true, enumerable: true, configurable: true });
  return out;
};
const newKey = (state) => {
  constructing = true;
  let key;
  try { key = new CryptoKey(); } finally { constructing = false; }
  apply(wmSet, keys, [key, state]);
  return key;
};

const HMAC_USAGES = { __proto__: null, sign: 1, verify: 1 };
const checkUsages = (usages) => {
  if (!isArray(usages)) throw new TypeErrorCtor("Failed to execute 'importKey' on 'SubtleCrypto': The provided value cannot be converted to a sequence.");
  const out = [];
  for (let i = 0; i < usages.length; i++) {
    const u = `${usages[i]}`;
    if (HMAC_USAGES[u] !== 1) throw domException("Unsupported key usage for an HMAC key", "SyntaxError");
    let seen = false;
    for (let j = 0; j < out.length; j++) if (out[j] === u) seen = true;
    if (!seen) define(out, out.length, { value: u, writable: true, enumerable: true, configurable: true });
  }
  if (out.length === 0) throw domException("Usages cannot be empty when importing a secret key.", "SyntaxError");
  return out;
};
const hmacAlgorithm = (algorithm) => {
  if (apply(toLowerCase, algorithmName(algorithm), []) !== "hmac") throw notSupported();
  if (algorithm === null || typeof algorithm !== "object" || algorithm.hash === undefined) {
    throw new TypeErrorCtor("Algorithm: hash: Missing or not an AlgorithmIdentifier");
  }
  return { hash: hashOf(algorithm.hash), length: algorithm.length };
};
const makeHmacKey = (hash, bytes, extractable, usages, length) => {
  if (length !== undefined) {
    length = +length;
    if (length === 0 || length > bytes.length * 8 || length <= (bytes.length - 1) * 8) throw domException("Invalid key length", "DataError");
  } else length = bytes.length * 8;
  if (bytes.length === 0) throw domException("Zero-length key is not supported", "DataError");
  return newKey({
    type: "secret",
    name: "HMAC",
    extractable: !!extractable,
    algorithm: { name: "HMAC", length, hash: { name: hash.name } },
    usages,
    bytes,
    hash,
  });
};
const base64urlDecode = (text) => fromBase64(`${text}`, { __proto__: null, alphabet: "base64url", lastChunkHandling: "loose" });
const base64urlEncode = (bytes) => apply(toBase64, bytes, [{ __proto__: null, alphabet: "base64url", omitPadding: true }]);
const JWK_ALG = { __proto__: null, "SHA-1": "HS1", "SHA-256": "HS256", "SHA-384": "HS384", "SHA-512": "HS512" };

const checkKey = (key, name, usage) => {
  const state = keyState(key);
  if (state.name !== name) throw domException("The requested operation is not valid for the provided key", "InvalidAccessError");
  let allowed = false;
  for (let i = 0; i < state.usages.length; i++) if (state.usages[i] === usage) allowed = true;
  if (!allowed) throw domException("The requested operation is not valid for the provided key", "InvalidAccessError");
  return state;
};
const hmacOf = (state, data) => hmac(state.hash.fn, state.bytes, data);

// Each method computes synchronously and returns a settled promise (the spec runs them "in
// parallel"; the result is the same for the caller, who must await it either way).
const resolveWith = (fn) => new PromiseCtor((resolve, reject) => { try { resolve(fn()); } catch (e) { reject(e); } });

export class SubtleCrypto {
  constructor() { throw new TypeErrorCtor("Illegal constructor"); }

  digest(algorithm, data) {
    return resolveWith(() => {
      const hash = hashOf(algorithm);
      return arrayBufferOf(hash.fn(bufferSource(data, "digest")));
    });
  }

  importKey(format, keyData, algorithm, extractable, keyUsages) {
    return resolveWith(() => {
      const { hash, length } = hmacAlgorithm(algorithm);
      const usages = checkUsages(keyUsages);
      format = `${format}`;
      if (format === "raw") return makeHmacKey(hash, bufferSource(keyData, "importKey"), extractable, usages, length);
      if (format === "jwk") {
        if (keyData === null || typeof keyData !== "object") throw new TypeErrorCtor("Failed to execute 'importKey' on 'SubtleCrypto': keyData is not a JsonWebKey");
        if (keyData.kty !== "oct") throw domException("The JWK 'kty' member was not 'oct'", "DataError");
        if (typeof keyData.k !== "string") throw domException("The JWK 'k' member was missing", "DataError");
        if (keyData.alg !== undefined && keyData.alg !== JWK_ALG[hash.name]) throw domException("The JWK 'alg' member was inconsistent with that specified by the Web Crypto call", "DataError");
        const ops = keyData.key_ops;
        if (ops !== undefined) {
          if (!isArray(ops)) throw domException("The JWK 'key_ops' member must be an array", "DataError");
          for (let i = 0; i < ops.length; i++) for (let j = 0; j < i; j++) if (ops[i] === ops[j]) throw domException("Duplicate key operation", "DataError");
          for (let i = 0; i < usages.length; i++) {
            let found = false;
            for (let j = 0; j < ops.length; j++) if (ops[j] === usages[i]) found = true;
            if (!found) throw domException("Key operations and usage mismatch", "DataError");
          }
        }
        if (keyData.ext === false && extractable) throw domException("The JWK 'ext' member was false while extractable was requested", "DataError");
        let bytes;
        try { bytes = base64urlDecode(keyData.k); } catch (e) { throw domException("The JWK 'k' member did not include the right encoding", "DataError"); }
        return makeHmacKey(hash, bytes, extractable, usages, length);
      }
      throw domException(`Unsupported key format: ${format}`, "NotSupportedError");
    });
  }

  exportKey(format, key) {
    return resolveWith(() => {
      const state = keyState(key);
      if (!state.extractable) throw domException("key is not extractable", "InvalidAccessError");
      format = `${format}`;
      if (format === "raw") return arrayBufferOf(state.bytes);
      if (format === "jwk") {
        return {
          key_ops: copyList(state.usages), ext: true, kty: "oct",
          k: base64urlEncode(state.bytes), alg: JWK_ALG[state.hash.name],
        };
      }
      throw domException(`Unsupported key format: ${format}`, "NotSupportedError");
    });
  }

  generateKey(algorithm, extractable, keyUsages) {
    return resolveWith(() => {
      const { hash, length } = hmacAlgorithm(algorithm);
      const usages = checkUsages(keyUsages);
      const bits = length === undefined ? hash.block : +length;
      if (!(bits > 0)) throw domException("Invalid key length", "OperationError");
      const bytes = new Uint8ArrayCtor((bits + 7) >> 3);
      fillRandom(bytes);
      return makeHmacKey(hash, bytes, extractable, usages, bits);
    });
  }

  sign(algorithm, key, data) {
    return resolveWith(() => {
      if (apply(toLowerCase, algorithmName(algorithm), []) !== "hmac") throw notSupported();
      const state = checkKey(key, "HMAC", "sign");
      return arrayBufferOf(hmacOf(state, bufferSource(data, "sign")));
    });
  }

  verify(algorithm, key, signature, data) {
    return resolveWith(() => {
      if (apply(toLowerCase, algorithmName(algorithm), []) !== "hmac") throw notSupported();
      const state = checkKey(key, "HMAC", "verify");
      const expected = hmacOf(state, bufferSource(data, "verify"));
      const given = bufferSource(signature, "verify");
      if (given.length !== expected.length) return false;
      let diff = 0;
      for (let i = 0; i < given.length; i++) diff |= given[i] ^ expected[i];
      return diff === 0;
    });
  }
}
define(SubtleCrypto.prototype, SymbolToStringTag, { value: "SubtleCrypto", configurable: true });
for (const name of ["encrypt", "decrypt", "deriveBits", "deriveKey", "wrapKey", "unwrapKey"]) {
  define(SubtleCrypto.prototype, name, {
    value: { [name]() { return PromiseCtor.reject(notSupported()); } }[name],
    writable: true, enumerable: true, configurable: true,
  });
}

export class Crypto {
  constructor() { throw new TypeErrorCtor("Illegal constructor"); }
}
const subtle = create(SubtleCrypto.prototype);
defineProperties(Crypto.prototype, {
  [SymbolToStringTag]: { value: "Crypto", configurable: true },
  subtle: { get() { return subtle; }, enumerable: true, configurable: true },
  getRandomValues: { value: getRandomValues, writable: true, enumerable: true, configurable: true },
  randomUUID: { value: randomUUID, writable: true, enumerable: true, configurable: true },
});
export const crypto = create(Crypto.prototype);
