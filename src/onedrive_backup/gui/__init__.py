"""The local web app: an aiohttp server on 127.0.0.1 that renders engine events in a browser.

`server` serves pages and the API, `security` guards every request, `controller` is the one
narrow object between HTTP handlers and the backup engine, `backend` is the only module here
that calls into auth, graph, state and the engine.
"""

from onedrive_backup.gui.controller import Controller
from onedrive_backup.gui.server import GuiServer

__all__ = ["Controller", "GuiServer"]
