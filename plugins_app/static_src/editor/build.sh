#!/usr/bin/env bash
# Rebuild the plugin admin's code editor (CodeMirror 6) from npm, at the exact versions
# pinned in package-lock.json, into plugins_app/static/plugins_app/editor/:
#   editor.js     one minified bundle (IIFE, no imports, no CDN), sets window.PluginsAppEditor
#   editor.css    layout, error mark and token colours (copied from src/editor.css)
#   LICENSES.txt  the licence of every npm package inside editor.js
# Needs node and npm. Commit the three outputs together with any change here.
#   ./build.sh            build
#   ./build.sh --check    build into a temporary folder and fail if the committed files differ
set -euo pipefail
cd "$(dirname "$0")"
OUT="$(cd ../../static/plugins_app && pwd)/editor"
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

# Exactly the locked versions (integrity-checked); no install scripts are needed
# (esbuild's binary comes in its platform package).
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
TARGET="$OUT"
[ "$CHECK" = 1 ] && TARGET="$WORK/out"
mkdir -p "$TARGET"

node_modules/.bin/esbuild src/editor.js \
  --bundle --minify --format=iife --target=es2020 --charset=utf8 \
  --legal-comments=none --log-level=warning \
  --banner:js="/* plugins_app code editor: CodeMirror 6 (MIT, Marijn Haverbeke and others) and its dependencies; licences in LICENSES.txt. Built by plugins_app/static_src/editor/build.sh; do not edit. */" \
  --metafile="$WORK/meta.json" \
  --outfile="$TARGET/editor.js"
cp src/editor.css "$TARGET/editor.css"
node licenses.mjs "$WORK/meta.json" > "$TARGET/LICENSES.txt"

if [ "$CHECK" = 1 ]; then
  diff -r "$TARGET" "$OUT" && echo "editor bundle is up to date"
else
  ls -l "$TARGET"
fi
