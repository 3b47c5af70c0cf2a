// Module style only: the host API imported from "plugin:host", which esbuild leaves as an
// import (--external:plugin:host) for the sandbox to resolve, next to a bundled library.
import { config, log } from "plugin:host";
import { v5 } from "uuid";

export function named(name) {
  log("naming", name);
  return { id: v5(name, config.namespace), namespace: config.namespace };
}

export default {
  named,
};
