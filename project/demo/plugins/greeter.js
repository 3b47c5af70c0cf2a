const plugin = {
  greet(name) { log(`Greeting ${name}`); return `Hello, ${name}! App version: ${config.version}`; },
  farewell(name) { return `Goodbye, ${name}!`; }
};
