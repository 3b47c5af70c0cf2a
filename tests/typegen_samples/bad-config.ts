// Misuse of the typed configuration: every marked line is a tsc error.

function configured(): number {
  config.weight = 2; // tsc-error: config is read-only
  config.keywords.push("x"); // tsc-error: read-only array
  const missing = config.colour; // tsc-error: not in the schema
  return config.prefix.length + Number(missing); // tsc-error: prefix may be undefined
}
