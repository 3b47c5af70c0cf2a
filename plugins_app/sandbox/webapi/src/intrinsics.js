// Intrinsics captured when the bundle runs (in the snapshot builder, before any plugin code
// exists): a plugin that replaces a built-in method breaks only its own code, never the
// timers, the random pool or the run loop that the bootstrap drives through this bundle.
export const apply = Reflect.apply;
export const define = Object.defineProperty;
export const defineProperties = Object.defineProperties;
export const create = Object.create;
export const freeze = Object.freeze;
export const getPrototypeOf = Object.getPrototypeOf;
export const setPrototypeOf = Object.setPrototypeOf;
export const ObjectProto = Object.prototype;
export const StringCtor = String;
export const NumberCtor = Number;
export const isArray = Array.isArray;
export const ErrorCtor = Error;
export const TypeErrorCtor = TypeError;
export const RangeErrorCtor = RangeError;
export const captureStackTrace = Error.captureStackTrace;
export const WeakMapCtor = WeakMap;
export const wmGet = WeakMap.prototype.get;
export const wmSet = WeakMap.prototype.set;
export const wmHas = WeakMap.prototype.has;
export const PromiseCtor = Promise;
export const promiseResolve = Promise.resolve.bind(Promise);
export const promiseReject = Promise.reject.bind(Promise);
export const charCodeAt = String.prototype.charCodeAt;
export const stringSlice = String.prototype.slice;
export const toLowerCase = String.prototype.toLowerCase;
export const stringIndexOf = String.prototype.indexOf;
export const fromCharCode = String.fromCharCode;
export const ArrayBufferCtor = ArrayBuffer;
export const isView = ArrayBuffer.isView;
export const Uint8ArrayCtor = Uint8Array;
export const TypedArrayProto = getPrototypeOf(Uint8Array.prototype);
const getter = (proto, name) => Object.getOwnPropertyDescriptor(proto, name).get;
export const taBuffer = getter(TypedArrayProto, "buffer");
export const taByteOffset = getter(TypedArrayProto, "byteOffset");
export const taByteLength = getter(TypedArrayProto, "byteLength");
export const taTag = getter(TypedArrayProto, Symbol.toStringTag);
export const taSet = TypedArrayProto.set;
export const taSubarray = TypedArrayProto.subarray;
export const taSlice = TypedArrayProto.slice;
export const taIndexOf = TypedArrayProto.indexOf;
export const dvBuffer = getter(DataView.prototype, "buffer");
export const dvByteOffset = getter(DataView.prototype, "byteOffset");
export const dvByteLength = getter(DataView.prototype, "byteLength");
export const abByteLength = getter(ArrayBuffer.prototype, "byteLength");
export const abSlice = ArrayBuffer.prototype.slice;
// Uint8Array.fromBase64 / toBase64 exist in the runtimes but not in the snapshot builder
// (V8 enables them when a context is created, measured): captured by install(), which runs
// in every runtime before any plugin code.
export let fromBase64 = null;
export let toBase64 = null;
export const captureLate = () => {
  fromBase64 = Uint8Array.fromBase64;
  toBase64 = Uint8Array.prototype.toBase64;
  if (typeof fromBase64 !== "function" || typeof toBase64 !== "function") throw new Error("webapi: Uint8Array base64 methods missing");
};
export const mathFloor = Math.floor;
export const mathMin = Math.min;
export const dateNow = Date.now;
export const SymbolToStringTag = Symbol.toStringTag;

// deno_core's own facilities (native ops), captured here; __bootstrap itself is deleted by
// the bootstrap before plugin code runs.
const core = globalThis.__bootstrap.core;
export const utf8Encode = core.encode;  // string -> Uint8Array (lone surrogates -> U+FFFD)
export const utf8Decode = core.decode;  // bytes -> string (V8's WHATWG decoder; strips one leading BOM)
export const latin1Decode = core.encodeBinaryString;  // bytes -> string, one char per byte
export const v8Clone = core.structuredClone;  // V8's ValueSerializer round trip
export const monotonicNow = core.ops.op_timer_now;  // ms since the runtime started, monotonic

// A view's bytes as a Uint8Array over the same memory (ArrayBuffer, any ArrayBufferView).
// Returns null for anything else.
export const bytesOf = (source) => {
  if (isView(source)) {
    let tag;
    try { tag = apply(taTag, source, []); } catch (e) { tag = undefined; }
    if (tag !== undefined) return new Uint8ArrayCtor(apply(taBuffer, source, []), apply(taByteOffset, source, []), apply(taByteLength, source, []));
    return new Uint8ArrayCtor(apply(dvBuffer, source, []), apply(dvByteOffset, source, []), apply(dvByteLength, source, []));
  }
  try {
    apply(abByteLength, source, []);
  } catch (e) {
    return null;
  }
  return new Uint8ArrayCtor(source);
};

// A copy of a BufferSource's bytes (so later changes by the caller do not matter).
export const copyBytes = (source) => {
  const view = bytesOf(source);
  return view === null ? null : apply(taSlice, view, []);
};

export const typedArrayTag = (value) => {
  if (!isView(value)) return undefined;
  try { return apply(taTag, value, []); } catch (e) { return undefined; }
};
