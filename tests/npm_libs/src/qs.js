// qs: nested query strings (plain JavaScript; bundles side-channel, get-intrinsic and
// object-inspect, which probe many intrinsics at load time).
import qs from "qs";

export default {
  parse(text, options = {}) {
    return qs.parse(text, options);
  },
  stringify(value, options = {}) {
    return qs.stringify(value, options);
  },
};
