// A classic-script plugin, installed as the "notes" plugin of tests/test_typegen.py and
// type-checked (checkJs, strict) against the types generated for it.
"use strict";

/** @type {Plugin} */
const plugin = {
  noteSaved(note, created) {
    const row = db.get("demo.Note", { id: note.id });
    if (row === null) return;
    const author = db.get("auth.User", { id: row.author });
    log(row.title.toUpperCase(), author?.username ?? "?", created, note.tags?.length ?? 0);
    db.update("demo.Note", { id: row.id }, { score: row.score + 1 });
    storage.incr("saved");
  },

  headline(value, request) {
    return `${config.prefix ?? ""}${value.trim()} (${request.method} ${request.path})`;
  },

  scoreOf(noteId) {
    const notes = db.query("demo.Note", {
      where: { id: noteId, author__username__istartswith: "a", created_at__gte: "2024-01-01", title__isnull: false },
      exclude: { score__range: [0, 1] },
      order: ["-score", "author__username"],
      fields: ["id", "score"],
      limit: 1,
    });
    return notes.length ? notes[0].score * config.weight : null;
  },

  // Not declared by the site: any function is allowed.
  digest(authorId) {
    const created = db.create("demo.Note", { author: Number(authorId), title: "Digest" });
    return { id: created.id, at: this.stamp(new Date(created.created_at)) };
  },

  stamp(/** @type {Date} */ when) {
    return when.toISOString();
  },

  stats() {
    return { notes: db.count("demo.Note", { score__in: [1, 2] }), saved: storage.get("saved") };
  },
};
