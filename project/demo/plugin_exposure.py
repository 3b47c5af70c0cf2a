"""What the demo site lets plugins see. Discovered by plugins_app at startup.

``auth.User`` exposes id and username only: email, names, flags, dates and the
password hash stay unexposed (the password could not be exposed even if listed).
"""

from plugins_app.exposure import expose

expose("auth.User", read=["id", "username"])
expose(
    "demo.Note",
    read=["id", "author", "title", "body", "score", "created_at"],
    write=["author", "title", "body", "score"],
    relations=["author"],
)
