// The plugin as an ES module in JavaScript, checked with checkJs.
import { db, log } from "plugin:host";

export default /** @satisfies {Plugin} */ ({
  noteSaved(note, created) {
    const row = db.get("demo.Note", { id: note.id });
    log(created ? "created" : "updated", row?.title.length ?? 0);
  },
});
