// nanoid: random ids from crypto.getRandomValues (nanoid's browser build).
import { nanoid, customAlphabet, urlAlphabet } from "nanoid";

export default {
  ids(count, size) {
    const ids = [];
    for (let i = 0; i < count; i++) ids.push(size === undefined ? nanoid() : nanoid(size));
    return ids;
  },
  custom(alphabet, size, count) {
    const make = customAlphabet(alphabet, size);
    const ids = [];
    for (let i = 0; i < count; i++) ids.push(make());
    return ids;
  },
  alphabet() {
    return urlAlphabet;
  },
};
