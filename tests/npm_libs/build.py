"""Bundles real npm libraries into plugins, as a script and as a module (docs/bundling.md).

Used by tests/test_npm_libs.py (a session fixture) and by tests/npm_libs/coldstart.py.
Nothing is installed or built inside the repository: ``npm ci`` runs in a cache folder
named after the hash of package.json and package-lock.json,
``~/.cache/plugins_app-tests/npm-libs-<hash>/`` (``$PLUGINS_APP_TEST_CACHE`` or
``$XDG_CACHE_HOME`` move it), and the bundles are written beside it, in
``bundles-<hash of src/ and of the esbuild flags>/{script,module}/<entry>.js``. Both
steps write into a temporary folder and rename it into place, so concurrent runs never
see half a tree. No install scripts run (``--ignore-scripts``; esbuild's binary comes in
its platform package).

    python tests/npm_libs/build.py [--minify]   # prints the bundle folder and the sizes
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"

# Entries built both ways: each is `export default { ...hooks }` and nothing else exported.
LIBS = ("uuid", "nanoid", "jose", "base64", "qs", "noble_hashes", "normalize_url")
# Entries that only make sense as a module (they import "plugin:host").
MODULE_ONLY = ("host_import",)
STYLES = ("script", "module")

COMMON_FLAGS = ("--bundle", "--platform=browser", "--log-level=warning")
# A script: the IIFE's value is the entry's exports object, assigned to `var plugin`, whose
# properties are getters (esbuild's live bindings; the sandbox takes only plain function
# properties as hooks). The footer replaces it with the default export itself, a plain object.
SCRIPT_FLAGS = ("--format=iife", "--global-name=plugin", "--footer:js=plugin = plugin.default;")
# A module: `export { x as default }` at the end; "plugin:host" stays an import.
MODULE_FLAGS = ("--format=esm", "--external:plugin:host")

NPM_TIMEOUT = 600
ESBUILD_TIMEOUT = 120


class ToolsMissing(Exception):
    """node or npm is not installed."""


class BuildFailed(Exception):
    """npm ci or esbuild failed (the message has their output)."""


def cache_root() -> Path:
    explicit = os.environ.get("PLUGINS_APP_TEST_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "plugins_app-tests"


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:16]


def tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise ToolsMissing("node and npm are needed to bundle npm libraries (missing: "
                           + ", ".join(n for n, p in (("node", node), ("npm", npm)) if not p) + ")")
    return node, npm


def _run(cmd: list[str], cwd: Path, timeout: int) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"{' '.join(cmd[:2])} did not finish within {timeout} s") from None
    if proc.returncode != 0:
        raise BuildFailed(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def _publish(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; if another run got there first, keep theirs."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def install() -> Path:
    """``npm ci`` at the locked versions into the cache; returns the folder with node_modules."""
    _, npm = tools()
    manifest, lock = (HERE / "package.json").read_bytes(), (HERE / "package-lock.json").read_bytes()
    root = cache_root()
    final = root / f"npm-libs-{_digest(manifest, lock)}"
    if (final / "node_modules" / ".bin" / "esbuild").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".npm-libs-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        (tmp / "package.json").write_bytes(manifest)
        (tmp / "package-lock.json").write_bytes(lock)
        _run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], tmp, NPM_TIMEOUT)
        _publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def entries(style: str) -> tuple[str, ...]:
    return LIBS + (MODULE_ONLY if style == "module" else ())


def build(minify: bool = False) -> Path:
    """Install if needed, then bundle every entry both ways (once per source content).
    Returns the folder holding ``script/`` and ``module/``."""
    deps = install()
    extra = ("--minify",) if minify else ()
    flags = repr((COMMON_FLAGS, SCRIPT_FLAGS, MODULE_FLAGS, extra)).encode()
    sources = [p.name.encode() + b"\0" + p.read_bytes() for p in sorted(SRC.glob("*.js"))]
    final = deps / f"bundles-{_digest(flags, *sources)}"
    if final.is_dir():
        return final
    tmp = deps / f".bundles-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        # The entries are copied next to node_modules: esbuild resolves packages from the
        # importing file's folder upwards.
        shutil.copytree(SRC, tmp / "src")
        for style, style_flags in (("script", SCRIPT_FLAGS), ("module", MODULE_FLAGS)):
            (tmp / style).mkdir(parents=True)
            cmd = [str(deps / "node_modules" / ".bin" / "esbuild"),
                   *(f"src/{name}.js" for name in entries(style)),
                   *COMMON_FLAGS, *style_flags, *extra, f"--outdir={tmp / style}"]
            _run(cmd, tmp, ESBUILD_TIMEOUT)
        _publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def bundle_text(source: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """esbuild ``--bundle`` of ``source`` (read from stdin, packages resolved from the
    installed node_modules) with ``flags``; the completed process, never raises on a
    build error (stdout: the bundle, stderr: esbuild's messages)."""
    deps = install()
    return subprocess.run(
        [str(deps / "node_modules" / ".bin" / "esbuild"), "--bundle", "--log-level=warning",
         "--sourcefile=entry.js", *flags],
        cwd=deps, input=source, capture_output=True, text=True, timeout=ESBUILD_TIMEOUT,
    )


if __name__ == "__main__":
    out = build(minify="--minify" in sys.argv[1:])
    print(out)
    for style in STYLES:
        for name in entries(style):
            path = out / style / f"{name}.js"
            print(f"{style:6} {name:14} {path.stat().st_size:8,d} bytes")
