// The URL classes, compiled on first use (see url.js).
// Its source (dist/url.js) is not in the snapshot: the worker hands it over through
// `loadSource` (install's urlSource), the first time a runtime touches URL.
import { define } from "./intrinsics.js";
import { TextDecoder, TextEncoder } from "./encoding.js";

const FunctionCtor = Function;
const StringCtor = String;
let classes = null;
let loadSource = null;
export const setUrlSource = (load) => { loadSource = load; };
export const urlClasses = () => {
  if (classes === null) {
    const source = loadSource === null ? undefined : loadSource();
    if (typeof source !== "string") throw new Error("URL is not available in this runtime");
    classes = new FunctionCtor("__plugins_text", StringCtor(source) + "\nreturn __plugins_url;")({ TextEncoder, TextDecoder });
  }
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
