// An ES module plugin in JavaScript with type errors: every marked line is a tsc error.
import { db, fetch } from "plugin:host"; // tsc-error: plugin:host has no fetch

export default /** @satisfies {Plugin} */ ({
  noteSaved(note) {
    const row = db.get("demo.Note", { id: note.id });
    return note.title.toFixed(2) + String(row?.body); // tsc-error: title is a string; body not readable
  },
  stats() {
    return fetch;
  },
});
