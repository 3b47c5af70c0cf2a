// The same plugin as notes.js, in TypeScript (a script: no import/export).

const plugin: Plugin = {
  noteSaved(note, created) {
    const row: DemoNoteRow | null = db.get("demo.Note", { id: note.id });
    if (row === null || !created) return;
    db.update("demo.Note", { id: row.id }, { score: row.score + (note.tags ?? []).length });
  },

  headline: (value, request) => (request.user === null ? value : `${config.prefix ?? ""}${value}`),

  async scoreOf(noteId: number): Promise<number | null> {
    const note = db.get("demo.Note", { id: noteId });
    return note && note.score * config.weight;
  },

  stats(): JsonValue {
    const authors: number[] = db.query("demo.Note", { fields: ["author"] }).map((n) => n.author);
    return { authors, mode: config.mode ?? null };
  },
};
