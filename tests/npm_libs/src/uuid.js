// uuid: v4 (crypto.randomUUID, or crypto.getRandomValues when given options), v5 (SHA-1,
// pure JavaScript in uuid's browser build), validate/version/parse/stringify.
import { v4, v5, validate, version, parse, stringify, NIL } from "uuid";

export default {
  // `count` ids from v4() (crypto.randomUUID) and `count` from v4({}) (crypto.getRandomValues).
  v4(count) {
    const native = [], fromBytes = [];
    for (let i = 0; i < count; i++) {
      native.push(v4());
      fromBytes.push(v4({}));
    }
    return { native, fromBytes };
  },
  v5(name, namespace) {
    return v5(name, namespace);
  },
  inspect(id) {
    const ok = validate(id);
    return { valid: ok, version: ok ? version(id) : null, roundTrip: ok ? stringify(parse(id)) : null, nil: NIL };
  },
};
