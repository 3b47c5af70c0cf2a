// The URL classes, compiled on first use (see url.js).
import urlSource from "virtual:url-source";
import { define } from "./intrinsics.js";
import { TextDecoder, TextEncoder } from "./encoding.js";

const FunctionCtor = Function;
let classes = null;
export const urlClasses = () => {
  if (classes === null) classes = new FunctionCtor("__plugins_text", urlSource + "\nreturn __plugins_url;")({ TextEncoder, TextDecoder });
  return classes;
};

// A global that loads on first read, then becomes a plain data property (writable,
// configurable) holding the class; assigning it first just stores the value.
export const defineLazyGlobal = (global, name) => {
  define(global, name, {
    get() {
      const value = urlClasses()[name];
      define(global, name, { value, writable: true, enumerable: false, configurable: true });
      return value;
    },
    set(value) {
      define(global, name, { value, writable: true, enumerable: false, configurable: true });
    },
    enumerable: false,
    configurable: true,
  });
};
