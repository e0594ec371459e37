"""The web application of ``cardiolens serve``: a FastAPI server and a static page (needs the ``web`` extra).

Example:
    >>> from cardiolens.app import create_app  # doctest: +SKIP
    >>> app = create_app()  # an ASGI app: uvicorn.run(app) or fastapi.testclient.TestClient(app)
"""

from cardiolens.app.server import AppSettings, create_app, serve
from cardiolens.app.store import RecordStore
from cardiolens.app.uploads import UploadError, UploadLimits

__all__ = ["AppSettings", "RecordStore", "UploadError", "UploadLimits", "create_app", "serve"]
