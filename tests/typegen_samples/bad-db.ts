// Uses of db beyond the plugin's grants: every marked line is a tsc error.

function misuse(): void {
  const note = db.get("demo.Note", { id: 1 });
  const body = note?.body; // tsc-error: body is not granted for reading
  db.query("demo.Note", { fields: ["id", "body"] }); // tsc-error: body is not readable
  db.query("demo.Note", { where: { body__icontains: "x" } }); // tsc-error: cannot filter on body
  db.query("demo.Note", { order: "-body" }); // tsc-error: cannot order by body
  db.create("demo.Note", { author: 1, title: "t", score: 3 }); // tsc-error: score is not granted for create
  db.create("demo.Note", { title: "t" }); // tsc-error: author is required
  db.update("demo.Note", { id: 1 }, { title: "new" }); // tsc-error: title is read-only for this plugin
  db.update("demo.Note", { id: 1 }, { score: "high" }); // tsc-error: score is a number
  db.delete("demo.Note", { id: 1 }); // tsc-error: no delete grant
  db.count("auth.Group"); // tsc-error: not granted
  db.get("auth.User", { username__regex: "^a" }); // tsc-error: lookup not allowed on auth.User
  db.get("demo.Note", { author__email: "x" }); // tsc-error: email is not readable
  db.create("auth.User", { username: "x" }); // tsc-error: no create grant on auth.User
  const user = db.get("auth.User", { id: 1 });
  user?.email; // tsc-error: not readable
  db.get("demo.Note", { id: "one" }); // tsc-error: id is a number
  db.query("demo.note"); // tsc-error: labels as the site spells them
  log(body);
}
