// DOMException (WebIDL), hand-written after Node.js 20's own (lib/internal/per_context/
// domexception.js): small and fully specified, no library needed.
import { apply, captureStackTrace, define, defineProperties, ErrorCtor, StringCtor, TypeErrorCtor, WeakMapCtor, wmGet, wmHas, wmSet, setPrototypeOf, SymbolToStringTag } from "./intrinsics.js";

const internals = new WeakMapCtor();

// Legacy names with their codes (WebIDL's table).
const CODES = {
  __proto__: null,
  IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5,
  NoModificationAllowedError: 7, NotFoundError: 8, NotSupportedError: 9, InUseAttributeError: 10,
  InvalidStateError: 11, SyntaxError: 12, InvalidModificationError: 13, NamespaceError: 14,
  InvalidAccessError: 15, TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20,
  URLMismatchError: 21, QuotaExceededError: 22, TimeoutError: 23, InvalidNodeTypeError: 24, DataCloneError: 25,
};
const CONSTANTS = [
  ["INDEX_SIZE_ERR", 1], ["DOMSTRING_SIZE_ERR", 2], ["HIERARCHY_REQUEST_ERR", 3], ["WRONG_DOCUMENT_ERR", 4],
  ["INVALID_CHARACTER_ERR", 5], ["NO_DATA_ALLOWED_ERR", 6], ["NO_MODIFICATION_ALLOWED_ERR", 7], ["NOT_FOUND_ERR", 8],
  ["NOT_SUPPORTED_ERR", 9], ["INUSE_ATTRIBUTE_ERR", 10], ["INVALID_STATE_ERR", 11], ["SYNTAX_ERR", 12],
  ["INVALID_MODIFICATION_ERR", 13], ["NAMESPACE_ERR", 14], ["INVALID_ACCESS_ERR", 15], ["VALIDATION_ERR", 16],
  ["TYPE_MISMATCH_ERR", 17], ["SECURITY_ERR", 18], ["NETWORK_ERR", 19], ["ABORT_ERR", 20], ["URL_MISMATCH_ERR", 21],
  ["QUOTA_EXCEEDED_ERR", 22], ["TIMEOUT_ERR", 23], ["INVALID_NODE_TYPE_ERR", 24], ["DATA_CLONE_ERR", 25],
];

const internalsOf = (self) => {
  if (self === null || typeof self !== "object" || !apply(wmHas, internals, [self])) {
    throw new TypeErrorCtor('Value of "this" must be of type DOMException');
  }
  return apply(wmGet, internals, [self]);
};

export class DOMException {
  constructor(message = "", options = "Error") {
    captureStackTrace(this);
    if (options !== null && typeof options === "object") {
      const name = options.name;
      apply(wmSet, internals, [this, { message: `${message}`, name: `${name}` }]);
      if ("cause" in options) {
        define(this, "cause", { value: options.cause, configurable: true, writable: true, enumerable: false });
      }
    } else {
      apply(wmSet, internals, [this, { message: `${message}`, name: `${options}` }]);
    }
  }

  get name() { return internalsOf(this).name; }

  get message() { return internalsOf(this).message; }

  get code() {
    const code = CODES[internalsOf(this).name];
    return typeof code === "number" ? code : 0;
  }
}
setPrototypeOf(DOMException.prototype, ErrorCtor.prototype);
defineProperties(DOMException.prototype, {
  [SymbolToStringTag]: { configurable: true, value: "DOMException" },
  name: { enumerable: true, configurable: true },
  message: { enumerable: true, configurable: true },
  code: { enumerable: true, configurable: true },
});
for (const [name, value] of CONSTANTS) {
  const desc = { enumerable: true, value };
  define(DOMException, name, desc);
  define(DOMException.prototype, name, desc);
}

export const domException = (message, name) => new DOMException(message, name);
