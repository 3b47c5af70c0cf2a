// Shows every way the demo site calls plugins:
//  - headline:   a filter the home view applies to its headline (apply_filters)
//  - noteSaved:  an action bound to Note post_save, run after the commit
//  - noteIndexed: an action bound to Note post_save in background mode (Celery, or inline)
//  - sidebar:    a template hook ({% plugin_hook "sidebar" %}), returning sanitized HTML
//  - onRequest:  an HTTP endpoint at /plugins/activity/ (the plugin is http_enabled)
const plugin = {
  headline(text) {
    return `${text} (${storage.get("saves") || 0} note saves seen by plugins)`;
  },
  noteSaved(note, meta) {
    storage.incr("saves");
    log(`note ${note.id} ${meta.created ? "created" : "updated"}: ${note.title}`);
  },
  noteIndexed(note) {
    storage.set("last_indexed", note.title);
  },
  sidebar() {
    const last = storage.get("last_indexed");
    return { html: `<p><strong>Activity</strong>: ${storage.get("saves") || 0} saves` +
      (last ? `, last indexed <em>${last.replace(/[<&>]/g, "")}</em>` : "") +
      `. <a href="/plugins/activity/stats">JSON stats</a></p><script>alert("never runs")</script>` };
  },
  onRequest(req) {
    return { status: 200, json: { path: req.path, saves: storage.get("saves") || 0, lastIndexed: storage.get("last_indexed") } };
  },
};
