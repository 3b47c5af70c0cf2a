// Writes LICENSES.txt: the licence text of every npm package that esbuild put into the
// bundle (read from its metafile), at the version installed from package-lock.json.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const meta = JSON.parse(readFileSync(process.argv[2], "utf8"));
const names = new Set();
for (const input of Object.keys(meta.inputs)) {
  const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (match) names.add(match[1]);
}

const out = [
  "Third-party software in editor.js (plugins_app's code editor).",
  "",
  "editor.js bundles the npm packages below, unmodified, at the versions shown",
  "(pinned in plugins_app/static_src/editor/package-lock.json). Each package's licence",
  "follows. The glue code (plugins_app/static_src/editor/src/) is part of plugins_app.",
  "",
];
for (const name of [...names].sort()) {
  const dir = join("node_modules", name);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f));
  if (!file) throw new Error(`no licence file in ${dir}`);
  out.push("=".repeat(78));
  out.push(`${pkg.name} ${pkg.version} (${pkg.license})`);
  out.push("=".repeat(78));
  out.push("");
  out.push(readFileSync(join(dir, file), "utf8").trim());
  out.push("");
}
process.stdout.write(out.join("\n") + "\n");
