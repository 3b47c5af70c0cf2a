// Reads the site's notes through `db` (granted: demo.Note and auth.User id/username),
// counts its own page views in `storage`, and reads its title from `config`.
const plugin = {
  summary() {
    const views = storage.incr("views");
    const notes = db.query("demo.Note", { order: ["-score"], limit: 50, fields: ["title", "author", "score"] });
    const names = {};
    for (const user of db.query("auth.User", { where: { id__in: notes.map((n) => n.author) } })) {
      names[user.id] = user.username;
    }
    return {
      title: config.title,
      views,
      top: notes.slice(0, 3).map((n) => ({ title: n.title, by: names[n.author], score: n.score })),
      total: db.count("demo.Note"),
    };
  },
  upvote(noteId) {
    const note = db.get("demo.Note", { id: noteId });
    if (note === null) return null;
    db.update("demo.Note", { id: noteId }, { score: note.score + 1 });
    return note.score + 1;
  },
};
