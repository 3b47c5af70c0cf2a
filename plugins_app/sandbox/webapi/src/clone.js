// structuredClone: V8's own ValueSerializer round trip (deno_core's core.structuredClone,
// the serializer Node.js uses too), with its errors turned into DOMException DataCloneError.
import { domException } from "./domexception.js";
import { apply, define, stringIndexOf, StringCtor, TypeErrorCtor, v8Clone } from "./intrinsics.js";

const endsWith = String.prototype.endsWith;

export function structuredClone(value, options = undefined) {
  if (arguments.length === 0) {
    const e = new TypeErrorCtor('The value argument must be specified');
    define(e, "code", { value: "ERR_MISSING_ARGS", writable: true, configurable: true, enumerable: false });
    throw e;
  }
  if (options !== undefined && options !== null) {
    if (typeof options !== "object") throw new TypeErrorCtor('The "options" argument must be of type object.');
    const transfer = options.transfer;
    if (transfer !== undefined && transfer !== null && transfer.length > 0) {
      throw domException("Transferring objects is not supported in this sandbox", "DataCloneError");
    }
  }
  try {
    return v8Clone(value);
  } catch (e) {
    if (e instanceof TypeErrorCtor) {
      let message;
      try { message = StringCtor(e.message); } catch (x) { throw e; }
      if (apply(endsWith, message, [" could not be cloned."])) throw domException(message, "DataCloneError");
    }
    throw e;
  }
}
