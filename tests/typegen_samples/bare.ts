// A plugin with no grants and no configuration schema: every marked line is a tsc error.

function bare(): number {
  db.count("demo.Note"); // tsc-error: no model is granted
  const limit: number = config.limit; // tsc-error: without a schema, config values are unknown
  return typeof config.limit === "number" ? config.limit : limit;
}
