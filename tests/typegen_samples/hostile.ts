// The "hostile" plugin's hook name, hook and config descriptions and config keys try to
// declare `injected` in its generated types: it must stay undeclared.

const plugin: Plugin = {};
const value: number = injected; // tsc-error: not declared by anything generated
