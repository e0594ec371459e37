"""The FastAPI server of ``cardiolens serve``: a JSON API under ``/api`` and the static page that uses it.

Everything a request computes runs in the thread pool (``run_in_threadpool``, or Starlette's own
iteration of a synchronous stream), never on the event loop, so one long generation or fifty
analyses leave the server answering. Model work (analysis, attention, attributions, reports) runs at
most ``AppSettings.compute_threads`` requests at a time: more threads than cores only queue on the
cores and on the interpreter lock, which the event loop needs too.

Bad input is a 4xx with a message the page shows: 400 for an upload the server refuses, 404 for an
unknown record or model, 413 for too much data, 422 for a record or setting that breaks the input
contract (the ``CardiolensError`` message, with the server's folders removed from it).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import Body, FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import HTTPException
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from cardiolens import __version__
from cardiolens.app import services
from cardiolens.app.store import ID_PATTERN, Entry, RecordNotFound, RecordStore
from cardiolens.app.uploads import UploadError, UploadLimits, choose_record, save_files
from cardiolens.errors import CardiolensError, RecordError
from cardiolens.signal.record import Record

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ["127.0.0.1", "localhost"]
CLI_RATE_HINT = "pass fs= (--fs on the command line)"  # what the readers ask for when a file has no rate
WEB_RATE_HINT = "enter it in the upload form's 'Sampling rate (Hz, if the file has none)' field (fs= in the API)"
CLI_NAN_HINT = "load it with nan_policy='interpolate' (--nan_policy interpolate on the command line)"
WEB_NAN_HINT = "tick the upload form's 'Fill gaps' box (fill_gaps=true in the API)"
EXAMPLES = {
    "simulated": "30 s of simulated ECG (lead II) and finger PPG at 500 Hz, 72 bpm (neurokit2)",
}


@dataclass
class AppSettings:
    """Settings of one server.

    Attributes:
        ttl_s: seconds an uploaded record is kept after its last use.
        max_records: records kept at once (least recently used dropped first).
        limits: upload bounds (bytes per request, files, samples).
        torch_threads: torch threads while serving (1: small models gain nothing from more and it
            keeps concurrent requests from competing for cores); ``None`` leaves torch alone.
        store_root: parent of the record store (default: a new temporary folder).
        models: name -> checkpoint folder of models offered beside the shipped ones (the operator's
            own fine-tuned models; a model fine-tuned from a shipped GPT gets the attention-shift view).
        compute_threads: requests doing model work at once (the others wait their turn).
    """

    ttl_s: float = 1800.0
    max_records: int = 64
    limits: UploadLimits = UploadLimits()
    torch_threads: int | None = 1
    store_root: str | None = None
    models: dict[str, str] = field(default_factory=dict)
    compute_threads: int = 2


# -- request and response bodies (these make the OpenAPI schema) ------------------------------------
class ErrorOut(BaseModel):
    detail: str = Field(description="what is wrong, in words to show a user")


class RecordOut(BaseModel):
    id: str = Field(description="the record's handle for the other endpoints; valid until it expires or is deleted")
    name: str
    format: str | None
    fs: float
    leads: list[str]
    units: list[str]
    modalities: list[str]
    default_lead: str
    samples: int
    duration_s: float
    quality: dict[str, Any] = Field(description="per-lead quality checks, as `cardiolens info` reports them")
    annotations: dict[str, int] | None = None
    metadata: dict[str, Any] = {}
    expires_after_s: float


class ModelOut(BaseModel):
    name: str
    kind: str = Field(description="'generative' (continues a signal, attention maps) or 'predictor'")
    modality: str | None
    fs: float | None
    window: int | None
    task: str | None = None
    classes: list[str] = []
    n_layer: int | None = None
    n_head: int | None = None


class ExampleOut(BaseModel):
    name: str
    description: str


class AnalysisIn(BaseModel):
    lead: str | None = Field(None, description="lead to analyse (default: II / MLII / I / the first lead)")


class AttentionIn(BaseModel):
    model: str | None = Field(None, description="a shipped GPT (default: the one of the lead's modality)")
    lead: str | None = Field(None, description="lead to read (default: the record's default lead)")
    start: float = Field(0.0, ge=0.0, le=1e7, description="seconds into the record where the model's window starts")
    layer: int | None = Field(None, ge=0, le=255, description="layer, from 0; null for the mean of all layers")
    head: int | None = Field(None, ge=0, le=255, description="head, from 0; null for the mean of all heads")
    token: int = Field(-1, ge=-1, le=100_000, description="query token, from 0; -1 for the last")


class AttentionShiftIn(AttentionIn):
    model: str | None = Field(None, description="a model fine-tuned from a GPT the server offers (default: the first)")


class AttributionIn(BaseModel):
    model: str | None = Field(None, description="a shipped GPT (default: the one of the lead's modality)")
    lead: str | None = Field(None, description="lead to explain (default: the record's default lead)")
    start: float = Field(0.0, ge=0.0, le=1e7, description="seconds into the record where the window starts")
    method: str = Field(
        "ig", pattern=r"^(ig|occlusion|attention|gradrollout)$", description="attribution method (of a GPT)"
    )


class GenerateIn(BaseModel):
    model: str | None = Field(None, description="a shipped generative model (default: the lead's modality)")
    lead: str | None = Field(None, description="lead to continue (default: the record's default lead)")
    steps: int = Field(300, ge=1, le=5000, description="samples to generate at the model's rate")
    temperature: float = Field(1.0, gt=0.0, le=10.0)
    top_k: int | None = Field(None, ge=1, le=1000)
    greedy: bool = False
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    chunk: int = Field(25, ge=1, le=1000, description="samples per streamed chunk")


class ExplainInfoOut(BaseModel):
    sections: dict[str, str | None] = Field(description="per explanation: null when available, else why not")
    tuned: dict[str, str] = Field(
        default_factory=dict, description="fine-tuned models whose attention shift can be drawn -> their pretrained GPT"
    )


# -- the body-size guard ------------------------------------------------------------------------------
class BodyLimit:
    """Refuse request bodies above ``max_bytes`` with 413 before they are parsed or spooled to disk.

    A stated Content-Length above the limit is refused at once; a body without one (chunked) is
    counted as it arrives and refused when it passes the limit.
    """

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        limit = self.max_bytes
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                too_big = True
            if too_big:
                detail = f"the upload is larger than the server's limit of {limit / 2**20:.0f} MiB"
                response = JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})
                await response(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, f"the upload is larger than the server's limit of {limit / 2**20:.0f} MiB")
            return message

        await self.app(scope, counted, send)


# -- the application ----------------------------------------------------------------------------------
def static_dir() -> Path:
    """Folder of the page (index.html, app.js, app.css), inside the installed package."""
    return Path(str(resources.files("cardiolens.app") / "static"))


def plotly_js() -> Path:
    """plotly.js as the installed ``plotly`` Python package ships it: the page needs no network."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise RuntimeError(f"plotly.min.js not found in the installed plotly package ({path})")
    return path


def create_app(settings: AppSettings | None = None, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The web app: API, page, record store.

    Args:
        settings: limits and expiry (defaults: :class:`AppSettings`).
        allowed_hosts: Host headers accepted (``cardiolens serve`` on a loopback address passes
            127.0.0.1 and localhost, which stops DNS-rebinding pages from reaching the API); ``None``
            accepts any.
    """
    settings = settings or AppSettings()
    store = RecordStore(settings.store_root, ttl_s=settings.ttl_s, max_entries=settings.max_records)
    pool = services.ModelPool(settings.models)
    attention_cache = services.AttentionCache()
    limiter = anyio.CapacityLimiter(max(1, settings.compute_threads))

    async def compute(fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in a worker thread, with at most ``compute_threads`` of them busy at once."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args), limiter=limiter)

    examples: dict[str, Record] = {}
    plotly_path = plotly_js()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Iterator[None]:
        before = None
        if settings.torch_threads:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(settings.torch_threads)
        try:
            yield
        finally:
            store.close()
            if before is not None:
                import torch

                torch.set_num_threads(before)

    # FastAPIOffline serves the /docs and /redoc pages' scripts from the installed package, not a CDN
    app = FastAPIOffline(
        title="cardiolens",
        version=__version__,
        description=(
            "Load a heart-signal record, analyse it with the shipped models, see their attention, and "
            "generate continuations. Records are kept in a per-session temporary store and expire after "
            f"{settings.ttl_s / 60:g} minutes without use."
        ),
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.pool = pool
    app.state.settings = settings
    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.add_middleware(BodyLimit, max_bytes=settings.limits.max_bytes)

    inside_store = re.compile(re.escape(str(store.root)) + r"[/\\]+(?:[A-Za-z0-9_-]+[/\\]+)?(?:upload[/\\]+)?")

    def clean_message(exc: Exception) -> str:
        """The message without the server's folders: the client knows its files by their names only."""
        return inside_store.sub("", str(exc))

    @app.exception_handler(UploadError)
    async def _upload_error(_: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse({"detail": clean_message(exc)}, status_code=exc.status)

    @app.exception_handler(RecordNotFound)
    async def _not_found(_: Request, exc: RecordNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(services.UnknownModel)
    async def _unknown_model(_: Request, exc: services.UnknownModel) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(CardiolensError)
    async def _contract(_: Request, exc: CardiolensError) -> JSONResponse:
        return JSONResponse({"detail": clean_message(exc)}, status_code=422)

    errors = {
        400: {"model": ErrorOut, "description": "an upload the server refuses"},
        404: {"model": ErrorOut, "description": "unknown or expired record, unknown model"},
        413: {"model": ErrorOut, "description": "too much data"},
        422: {"model": ErrorOut, "description": "input that breaks the input contract"},
    }
    record_id = PathParam(pattern=ID_PATTERN, description="a record id from POST /api/records or /api/examples")

    def entry_out(entry: Entry) -> dict[str, Any]:
        return {"id": entry.id, **services.record_summary(entry.record), "expires_after_s": store.ttl_s}

    def check_size(record: Record) -> None:
        limits = settings.limits
        if not limits.min_fs <= record.fs <= limits.max_fs:
            raise UploadError(
                f"{record.name}: a sampling rate of {record.fs:g} Hz is outside what the web app analyses "
                f"({limits.min_fs:g} to {limits.max_fs:g} Hz); check the rate in the file or the one sent with it",
                422,
            )
        if (
            record.n_samples > limits.max_samples
            or record.n_samples * record.n_channels > limits.max_values
            or record.duration > limits.max_duration_s
        ):
            raise UploadError(
                f"{record.name}: {record.n_samples} samples x {record.n_channels} leads "
                f"({record.duration / 60:.1f} min) "
                f"is longer than the web app takes ({limits.max_samples} samples per lead, {limits.max_values} in "
                f"all, {limits.max_duration_s / 3600:g} h); crop it first (cardiolens.Record.crop) or use the "
                "Python API",
                413,
            )

    def load_upload(files: list[UploadFile], folder: Path, fs: float | None, fill_gaps: bool = False) -> Record:
        from cardiolens.io import load_record

        paths = save_files([(f.filename, f.file) for f in files], folder, settings.limits)
        path = choose_record(paths)
        try:
            record = load_record(path, fs=fs, nan_policy="interpolate" if fill_gaps else "raise")
        except RecordError as exc:
            # the readers speak to Python and CLI users; the browser user has the upload form's fields
            hints = [(CLI_RATE_HINT, WEB_RATE_HINT), (CLI_NAN_HINT, WEB_NAN_HINT)]
            if not any(cli in exc.problem for cli, _ in hints):
                raise
            problem = exc.problem
            for cli, web in hints:
                problem = problem.replace(cli, web)
            raise UploadError(f"{path.name}: {problem}", 422) from None
        except CardiolensError:
            raise
        except Exception as exc:  # noqa: BLE001  the client's file is untrusted: any failure to read it is the file's
            log.warning("reading upload %s failed", path.name, exc_info=True)
            raise UploadError(f"{path.name}: cannot be read as a record ({type(exc).__name__}: {exc})", 422) from None
        check_size(record)
        # messages name the file as the client sent it, never the server's folders
        record.source = path.relative_to(folder)
        return record

    # -- API ---------------------------------------------------------------------------------------
    @app.get("/api/health", tags=["server"])
    async def health() -> dict[str, Any]:
        """Whether the server answers (and how many records it holds)."""
        return {"status": "ok", "version": __version__, "records": len(store)}

    @app.get("/api/models", response_model=list[ModelOut], tags=["models"])
    async def models() -> list[dict[str, Any]]:
        """The shipped models the app can use."""
        return await run_in_threadpool(lambda: [pool.describe(name) for name in pool.names()])

    @app.get("/api/examples", response_model=list[ExampleOut], tags=["records"])
    async def list_examples() -> list[dict[str, str]]:
        """Bundled example records (simulated: no patient data ships with cardiolens)."""
        return [{"name": k, "description": v} for k, v in EXAMPLES.items()]

    @app.post("/api/examples/{name}", response_model=RecordOut, status_code=201, responses=errors, tags=["records"])
    async def load_example(name: str = PathParam(description="one of GET /api/examples")) -> dict[str, Any]:
        """Load a bundled example as a new record."""
        if name not in EXAMPLES:
            raise HTTPException(404, f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}")

        def make() -> Entry:
            if name not in examples:
                from cardiolens.analysis import simulated_record

                examples[name] = simulated_record()
            key, _ = store.new_folder()
            return store.add(key, examples[name], origin="example")

        return entry_out(await run_in_threadpool(make))

    @app.post("/api/records", response_model=RecordOut, status_code=201, responses=errors, tags=["records"])
    async def upload_record(
        files: Annotated[
            list[UploadFile],
            File(
                description="the record: a WFDB .hea with its .dat/.mat (and .atr), a zip holding them, a CSV/TSV, "
                ".npy or .npz; one record per upload"
            ),
        ],
        fs: Annotated[
            float | None, Form(gt=0, le=100_000.0, description="sampling rate, for CSV/NumPy that carry none")
        ] = None,
        fill_gaps: Annotated[
            bool,
            Form(description="fill missing samples (NaN) linearly from their neighbours instead of refusing the file"),
        ] = False,
    ) -> dict[str, Any]:
        """Upload a record; it is kept in the server's temporary store until it expires or is deleted."""
        key, folder = store.new_folder()
        try:
            record = await run_in_threadpool(load_upload, files, folder / "upload", fs, fill_gaps)
        except BaseException:
            store.discard(key)
            raise
        return entry_out(store.add(key, record, origin="upload"))

    @app.get("/api/records/{record_id}", response_model=RecordOut, responses=errors, tags=["records"])
    async def get_record(record_id: str = record_id) -> dict[str, Any]:
        """A loaded record's summary: rate, leads, units, length, quality."""
        return entry_out(store.get(record_id))

    @app.delete("/api/records/{record_id}", status_code=204, responses=errors, tags=["records"])
    async def delete_record(record_id: str = record_id) -> Response:
        """Forget a record and remove its files now."""
        if not store.delete(record_id):
            raise RecordNotFound("record not found: it was already deleted or expired")
        return Response(status_code=204)

    @app.get("/api/records/{record_id}/signal", responses=errors, tags=["records"])
    async def get_signal(
        record_id: str = record_id,
        start: Annotated[float, Query(ge=0.0, allow_inf_nan=False, description="first second")] = 0.0,
        duration: Annotated[
            float | None, Query(gt=0.0, allow_inf_nan=False, description="seconds (default: to the end)")
        ] = None,
        max_points: Annotated[
            int, Query(ge=100, le=200_000, description="points per lead")
        ] = services.DEFAULT_MAX_POINTS,
    ) -> dict[str, Any]:
        """Samples of every lead for plotting; spans longer than max_points keep each bucket's min and max."""
        entry = store.get(record_id)
        return await run_in_threadpool(services.signal_view, entry.record, start, duration, max_points)

    @app.post("/api/records/{record_id}/analysis", responses=errors, tags=["analysis"])
    async def analysis(
        body: Annotated[AnalysisIn, Body(default_factory=AnalysisIn)], record_id: str = record_id
    ) -> dict[str, Any]:
        """Beats (with the beat model's confidence when installed), RR and heart-rate series, and the rhythm
        probabilities of the shipped rhythm models: ``rhythm`` (rhythm-ecg), ``rhythm_trees`` (rhythm-ecg-trees)
        and ``rhythm_mean`` (rhythm-ecg-mean, the mean of the two), and ``beat_classes``: each beat's AAMI
        class (N, S, V, F) and confidence from aami-ecg-trees."""
        entry = store.get(record_id)
        return await compute(services.analyse, entry.record, pool, body.lead)

    def default_model(record: Record, lead: str | None, kind: str = "generative") -> tuple[str, str]:
        lead = lead or services.default_lead(record)
        wanted = services.modality(record.leads[record.lead_index(lead)])
        for name in pool.names():
            info = pool.describe(name)
            if info["kind"] == kind and info["modality"] == wanted:
                return name, lead
        raise UploadError(f"no shipped {kind} model reads {wanted} (lead {lead})", 422)

    def pick_model(record: Record, model: str | None, lead: str | None) -> tuple[str, str]:
        if model is None:
            return default_model(record, lead)
        return model, lead or services.default_lead(record)

    @app.post("/api/records/{record_id}/attention", responses=errors, tags=["explain"])
    async def attention(
        body: Annotated[AttentionIn, Body(default_factory=AttentionIn)], record_id: str = record_id
    ) -> dict[str, Any]:
        """A GPT's attention over one window: one token's row, the aggregate map, each head's reach."""
        entry = store.get(record_id)

        def run() -> dict[str, Any]:
            model, lead = pick_model(entry.record, body.model, body.lead)
            key = (entry.id, model, lead, round(body.start, 3))
            maps = attention_cache.get(key)
            if maps is None:
                maps = services.compute_attention(pool, entry.record, model, lead, body.start)
                attention_cache.put(key, maps)
            token = body.token if body.token >= 0 else maps.tokens.size - 1
            return services.attention_view(maps, body.layer, body.head, token)

        return await compute(run)

    @app.post("/api/records/{record_id}/attention-shift", responses=errors, tags=["explain"])
    async def attention_shift(
        body: Annotated[AttentionShiftIn, Body(default_factory=AttentionShiftIn)], record_id: str = record_id
    ) -> dict[str, Any]:
        """How fine-tuning moved one token's attention: the fine-tuned model against its pretrained GPT, same window."""
        entry = store.get(record_id)

        def run() -> dict[str, Any]:
            tuned = services.tuned_gpts(pool)
            name = body.model or next(iter(tuned), None)
            if name is None:
                raise services.UnknownModel("no installed model is fine-tuned from a shipped GPT")
            if name not in tuned:
                offered = ", ".join(tuned) or "none is installed"
                raise services.UnknownModel(f"{name!r} is not fine-tuned from a shipped GPT; offered: {offered}")
            lead = body.lead or services.default_lead(entry.record)
            maps = []
            for model in (tuned[name], name):
                key = (entry.id, model, lead, round(body.start, 3))
                found = attention_cache.get(key)
                if found is None:
                    found = services.compute_attention(pool, entry.record, model, lead, body.start)
                    attention_cache.put(key, found)
                maps.append(found)
            token = body.token if body.token >= 0 else maps[1].tokens.size - 1
            return services.attention_shift_view(maps[0], maps[1], body.layer, body.head, token)

        return await compute(run)

    @app.get("/api/explain", response_model=ExplainInfoOut, tags=["explain"])
    async def explain_info() -> dict[str, Any]:
        """Which explanations beyond attention this server offers, and why the others are missing."""
        sections = await run_in_threadpool(services.explain_sections, pool)
        tuned = await run_in_threadpool(services.tuned_gpts, pool)
        return {"sections": sections, "tuned": tuned}

    @app.post("/api/records/{record_id}/attributions", responses=errors, tags=["explain"])
    async def attributions(
        body: Annotated[AttributionIn, Body(default_factory=AttributionIn)], record_id: str = record_id
    ) -> dict[str, Any]:
        """Attributions per lead over one window (integrated gradients, occlusion, attention): cardiolens.explain."""
        entry = store.get(record_id)

        def run() -> dict[str, Any]:
            model, lead = pick_model(entry.record, body.model, body.lead)
            return services.attributions(pool, entry.record, model, lead, body.start, body.method)

        return await compute(run)

    @app.get("/api/records/{record_id}/explain-report", response_class=HTMLResponse, responses=errors, tags=["explain"])
    async def explain_report(
        record_id: str = record_id,
        model: Annotated[
            str | None,
            Query(
                description="any model of the server or a shipped mean of them (rhythm-ecg-mean), as cardiolens "
                "explain takes (default: the shipped GPT of the lead's modality)"
            ),
        ] = None,
        lead: Annotated[str | None, Query(description="lead to explain")] = None,
        start: Annotated[
            float,
            Query(
                ge=0.0,
                le=1e7,
                description="first second of the window; for aami-ecg-trees the time of the beat to explain "
                "(0: its first beat not called N)",
            ),
        ] = 0.0,
        methods: Annotated[
            str | None,
            Query(
                pattern=r"^[a-z,]{1,100}$",
                description="comma-separated cardiolens.explain methods (default: attention,embeddings,ig for a "
                "GPT, every method that applies for a CNN, features for a tree model; none for a mean of models)",
            ),
        ] = None,
    ) -> HTMLResponse:
        """The HTML report of cardiolens explain for one window (figures embedded); for a tree model, the
        effects of its record features over the whole record; for a mean of models, a report per member."""
        entry = store.get(record_id)

        def run() -> str:
            name, chosen = pick_model(entry.record, model, lead)
            return services.explain_report(pool, entry.record, name, chosen, start, methods)

        text = await compute(run)
        name = f"{entry.record.name}_explained.html"
        return HTMLResponse(text, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.post(
        "/api/records/{record_id}/generate",
        responses={**errors, 200: {"content": {"application/x-ndjson": {}}, "description": "a stream of events"}},
        tags=["generate"],
    )
    async def generate(
        body: Annotated[GenerateIn, Body(default_factory=GenerateIn)], record_id: str = record_id
    ) -> StreamingResponse:
        """Continue one lead, streamed as NDJSON: a ``start`` event (the context), ``chunk`` events as samples
        are generated, then ``done`` (summary and the ids of the CSV and PNG downloads) or ``error``."""
        entry = store.get(record_id)

        def start() -> Iterator[dict[str, Any]]:
            model, lead = pick_model(entry.record, body.model, body.lead)
            return services.generation_events(
                pool,
                entry.folder,
                entry.record,
                model_name=model,
                lead=lead,
                steps=body.steps,
                temperature=body.temperature,
                top_k=body.top_k,
                greedy=body.greedy,
                seed=body.seed,
                chunk=body.chunk,
                register_download=entry.add_download,
            )

        events = await run_in_threadpool(start)  # checks run here: a bad request is a 4xx, not a broken stream

        def lines() -> Iterator[bytes]:
            for event in events:  # Starlette iterates a synchronous iterator in its thread pool
                yield (json.dumps(event) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"})

    @app.get("/api/records/{record_id}/files/{file_id}", responses=errors, tags=["records"])
    async def download(
        record_id: str = record_id, file_id: str = PathParam(pattern=r"^[A-Za-z0-9_-]{8,32}$")
    ) -> FileResponse:
        """A file the server wrote for this record (generated CSV or figure), by the id it gave."""
        entry = store.get(record_id)
        found = entry.downloads.get(file_id)
        if found is None or not found[0].is_file():
            raise HTTPException(404, "no such file for this record (it may have expired)")
        path, media_type, filename = found
        return FileResponse(path, media_type=media_type, filename=filename)

    @app.get("/api/records/{record_id}/report", response_class=HTMLResponse, responses=errors, tags=["explain"])
    async def report(
        record_id: str = record_id, lead: Annotated[str | None, Query(description="lead to analyse")] = None
    ) -> HTMLResponse:
        """A self-contained HTML report (summary, quality, beats figure, rhythm) to download."""
        entry = store.get(record_id)
        text = await compute(services.report_html, entry.record, pool, lead)
        name = f"{entry.record.name}_report.html"
        return HTMLResponse(text, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # -- the page ----------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(static_dir() / "index.html", media_type="text/html")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    async def plotly() -> FileResponse:
        return FileResponse(plotly_path, media_type="text/javascript")

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    return app


def operator_models(paths: list[str | Path]) -> dict[str, str]:
    """Name -> folder of the checkpoints given to ``serve``, each checked now (not at a user's first request).

    A model is offered under its folder's name, or under as many of the folders above it as make the
    name unique and unlike every shipped model's (``runs/af/fold-0/model`` and ``runs/af2/fold-0/model``
    become ``af/fold-0/model`` and ``af2/fold-0/model``).

    Raises:
        CardiolensError: a folder that is not a cardiolens checkpoint, or one given twice.
    """
    from cardiolens.models import list_pretrained, load_model

    shipped = {*list_pretrained(), *services.shipped_tree_models()}
    folders: list[Path] = []
    for path in map(Path, paths):
        if path.resolve() in folders:
            raise CardiolensError(f"{path}: the same model folder is given twice")
        load_model(path)  # a clear error now if it is not a checkpoint
        folders.append(path.resolve())

    def suffix(folder: Path, depth: int) -> str:
        return "/".join(folder.parts[-depth:])

    out: dict[str, str] = {}
    for folder in folders:
        others = [f for f in folders if f != folder]
        depth = 1
        while depth < len(folder.parts) and (
            suffix(folder, depth) in shipped or any(suffix(o, depth) == suffix(folder, depth) for o in others)
        ):
            depth += 1
        out[suffix(folder, depth)] = str(folder)
    return out


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    ttl_minutes: float = 30.0,
    max_upload_mb: float = 64.0,
    threads: int = 1,
    log_level: str = "info",
    models: list[str | Path] | None = None,
    compute_threads: int = 2,
) -> None:
    """Run the web app with uvicorn until interrupted.

    Args:
        host: address to bind (default loopback only: the app has no authentication).
        port: port to listen on.
        ttl_minutes: minutes a record is kept after its last use.
        max_upload_mb: largest upload accepted, in MiB (2**20 bytes).
        threads: torch threads.
        log_level: uvicorn's log level.
        models: checkpoint folders offered beside the shipped models, each under its folder's name.
        compute_threads: requests doing model work at once (:class:`AppSettings`).
    """
    import uvicorn

    loopback = host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
    if not loopback:
        log.warning("serving on %s: anyone who can reach this address can use the app (it has no authentication)", host)
    settings = AppSettings(
        ttl_s=ttl_minutes * 60,
        limits=UploadLimits(max_bytes=int(max_upload_mb * 1024 * 1024)),
        torch_threads=threads,
        models=operator_models(models or []),
        compute_threads=compute_threads,
    )
    app = create_app(settings, allowed_hosts=[*LOOPBACK_HOSTS, host] if loopback else None)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
