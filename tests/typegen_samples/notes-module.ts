// The plugin as an ES module: the API imported from "plugin:host", hooks as the default
// export or as named exports typed with DeclaredHooks.
import { config, db, storage } from "plugin:host";

// The module's own names may shadow the API's globals; `host` still reaches them.
const log: string[] = [];

export const scoreOf: DeclaredHooks["scoreOf"] = (noteId) => {
  const note = db.get("demo.Note", { id: noteId });
  return note === null ? null : note.score;
};

export default {
  noteSaved(note) {
    log.push(note.title);
    host.log(log.length, storage.keys("x").length);
  },
  headline: (value) => value + String(config.weight),
} satisfies Plugin;
