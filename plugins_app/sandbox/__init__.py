"""Sandboxed execution of plugin code in supervised worker processes.

``worker.py`` and ``protocol.py`` run inside the sandbox process and import only the
standard library and jsrun: no Django, no settings, no credentials. ``pool.py`` is the
supervisor side that lives in the Django process.
"""
