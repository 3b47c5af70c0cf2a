"""Names of the engine and bridge internals no plugin may see, shared by the sandbox tests."""

from __future__ import annotations

import re

from plugins_app.sandbox import snapshot, worker

# The Python functions the bootstrap looks up (the worker binds them before it runs it).
BOUND_NAMES: list[str] = re.findall(r'opId\("(__plugins_\w+)"\)', worker.BOOTSTRAP_JS)
# deno_core's and jsrun's own globals, before the bootstrap deletes them.
ENGINE_INTERNALS: tuple[str, ...] = (
    "__bootstrap",
    "Deno",
    "__jsrunCallSync",
    "__jsrunCallAsync",
    "__host_op_sync__",
    "__host_op_async__",
    "__jsrun_bind_object",
    "__jsrun_from_py_stream",
    "ReadableStream",
)
# What a restored runtime holds before the bootstrap runs, and no plugin may see.
INTERNALS: tuple[str, ...] = (*ENGINE_INTERNALS, snapshot.BOOTSTRAP_FUNCTION, *BOUND_NAMES)
