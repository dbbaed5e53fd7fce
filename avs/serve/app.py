"""The web app: routes from URLs to :class:`~avs.serve.session.ServeSession`, the page and its static files.

Every error a request can cause is a JSON ``{"error": "..."}`` with a 4xx status; the OpenAPI description is
``/openapi.json``, shown at ``/api/docs``.
The page is plain HTML and JavaScript served from the package (no build step, nothing from a CDN).
"""

from pathlib import Path

from avs.errors import InputError
from avs.serve.session import MAX_K, RequestError, ServeSession

STATIC = Path(__file__).parent / "static"


def check_installed() -> None:
    """The one-line error naming the extra to install, when FastAPI or uvicorn is missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise InputError(None, "the web UI needs FastAPI and uvicorn: pip install 'avs[serve]'") from None


def create_app(session: ServeSession):
    """A FastAPI application serving ``session``."""
    check_installed()
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    # FastAPI's own /docs and /redoc pages load their viewers from a CDN: /api/docs renders /openapi.json instead
    app = FastAPI(
        title="avs",
        version=_version(),
        description="TRECVID ad-hoc video search: search, topics, runs.",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, e: RequestError):
        return JSONResponse({"error": str(e)}, status_code=404 if e.not_found else 400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=400)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, e: HTTPException):
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code)

    @app.get("/api/info", summary="What the server has loaded")
    def info() -> dict:
        return session.info()

    @app.get("/api/search", summary="Free-text search: the top k shots")
    def search(q: str = Query(..., description="The query text"), k: int = Query(100, ge=1, le=MAX_K)) -> dict:
        return session.search(q, k)

    @app.get("/api/topics", summary="The topics of the topic file")
    def topics() -> dict:
        return session.topic_list()

    @app.get("/api/topics/{num}", summary="A topic's ranking, its shots' judgments and its measures")
    def topic(num: int, k: int = Query(MAX_K, ge=1, le=MAX_K)) -> dict:
        return session.topic(num, k)

    @app.get("/api/runs", summary="The runs given to compare")
    def runs() -> dict:
        return {"runs": list(session.runs)}

    @app.get("/api/compare", summary="Two runs on one topic: overlap, shots only one found, infAP")
    def compare(a: str, b: str, topic: int) -> dict:
        return session.compare(a, b, topic)

    @app.get("/api/compare/plot.png", summary="infAP per topic of two runs (the report's plot)")
    def compare_plot(a: str, b: str) -> Response:
        return Response(session.compare_plot(a, b), media_type="image/png")

    @app.get("/api/export", summary="The model's ranking of every topic as a submission run (download)")
    def export(format: str = "xml", pid: str | None = None, year: int | None = None) -> Response:
        name, data = session.export(format, pid, year)
        media = "application/xml" if format == "xml" else "text/plain"
        return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/thumbs/{name}", include_in_schema=False)
    def thumbnail(name: str) -> FileResponse:
        return FileResponse(session.thumbnail(name), media_type="image/jpeg")

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> FileResponse:
        return FileResponse(STATIC / "api.html", media_type="text/html")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(session: ServeSession, host: str = "127.0.0.1", port: int = 8000, ready=None) -> None:
    """Run the app with uvicorn until interrupted; ``ready(url)`` is called once it listens."""
    check_installed()
    import uvicorn

    sock = _listening_socket(host, port)  # bound here, so that a taken port is one line, not uvicorn's log
    config = uvicorn.Config(create_app(session), host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    if ready is not None:
        startup = server.startup

        async def announce(sockets=None):
            await startup(sockets)
            if server.started:
                ready(f"http://{host if ':' not in host else f'[{host}]'}:{port}/")

        server.startup = announce
    server.run(sockets=[sock])


def _listening_socket(host: str, port: int):
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise InputError(None, f"--host {host}: {e.strerror} (an address of this machine, e.g. 127.0.0.1)") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise InputError(None, f"cannot listen on {host}:{port}: {e.strerror} (pick another --port)") from None
    sock.set_inheritable(True)
    return sock


def _version() -> str:
    from avs import __version__

    return __version__
