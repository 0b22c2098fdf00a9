"""The champion over HTTP: one PDF in, its class out.

    python -m processing.serve                                   # models:/docscale-classifier@champion, 127.0.0.1:8000
    python -m processing.serve --port 8080 --tracking-uri http://mlflow:5000 --reload-seconds 30

    curl -F file=@doc.pdf http://127.0.0.1:8000/v1/classify              # one PDF (multipart)
    curl --data-binary @doc.pdf -H 'content-type: application/pdf' http://127.0.0.1:8000/v1/classify
    curl -d '{"paths": ["/data/a.pdf", "s3://b/x.pdf"]}' -H 'content-type: application/json' \\
        http://127.0.0.1:8000/v1/classify                                 # files the server can read
    GET /healthz   GET /metrics (Prometheus)   POST /v1/reload (re-resolve the alias now)

The model is the registry's self-contained classifier (processing.classify): the extractor and
embedder settings are the model's own. Uploads are extracted in isolated worker processes with the
model's limits (bytes, pages, time, memory), so a hostile PDF costs one worker, never the server.
It listens on loopback by default: put a reverse proxy with TLS, authentication and a request-size
limit in front of it before exposing it (README, Serving).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from processing.classify import Document, DocumentClassifier
from training import tracking

UPLOAD_FIELD = "file"
STATUS_BY_OUTCOME = {  # a single upload that cannot be classified: the document is the problem (4xx)
    "too_large": 413,
    "not_pdf": 415,
    "encrypted": 422,
    "corrupt": 422,
    "empty_text": 422,
    "timeout": 422,
    "worker_error": 422,
    "unreadable": 422,
}


class Champion:
    """The served model: resolved from a registry URI, swapped whole when the alias moves."""

    def __init__(self, model_uri: str, extract_workers: int | None) -> None:
        self.model_uri, self.extract_workers = model_uri, extract_workers
        self.version = ""
        self.model: DocumentClassifier | None = None
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Load the version the URI names now, if it changed; True when it did."""
        version = tracking.model_version(self.model_uri)
        if str(version.version) == self.version:
            return False
        loaded = tracking.load_document_model(f"models:/{version.name}/{version.version}")
        loaded.start(self.extract_workers, coalesce=True)
        with self._lock:
            old, self.model, self.version = self.model, loaded, str(version.version)
        if old is not None:
            old.close()
        return True

    def get(self) -> tuple[DocumentClassifier, str]:
        with self._lock:
            if self.model is None:
                raise RuntimeError("no model loaded")
            return self.model, self.version


def path_allowed(path: str, roots: list[str]) -> bool:
    """Whether a JSON `paths` entry may be read: anywhere when no roots were given (--paths-under), else
    only under one of them. A local path counts where it really is (links and `..` resolved), so a link
    inside a root to a file outside it is refused; a URI (s3://...) must start with a root URI and has
    no `.` or `..` segments."""
    if not roots:
        return True
    if "://" in path:
        segments = path.split("://", 1)[1].split("/")
        return (
            "." not in segments
            and ".." not in segments
            and any("://" in root and path.startswith(root.rstrip("/") + "/") for root in roots)
        )
    real = os.path.realpath(path)
    return any(
        "://" not in root and (real == (top := os.path.realpath(root)) or real.startswith(top.rstrip(os.sep) + os.sep))
        for root in roots
    )


def create_app(champion: Champion, reload_seconds: float, paths_under: list[str] | None = None) -> FastAPI:
    """The service; `paths_under`: the only folders (or URI prefixes) JSON `paths` may name, None = any."""
    registry = CollectorRegistry()
    requests = Counter("docscale_serve_requests", "HTTP requests", ["endpoint", "code"], registry=registry)
    latency = Histogram(
        "docscale_serve_request_seconds",
        "Request latency",
        ["endpoint"],
        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        registry=registry,
    )
    outcomes = Counter("docscale_serve_documents", "Documents classified, by outcome", ["outcome"], registry=registry)
    model_version = Gauge("docscale_serve_model_version", "Registry version of the served model", registry=registry)
    replaced = Gauge("docscale_serve_workers_replaced", "Extraction workers killed or lost", registry=registry)
    reloads = Counter("docscale_serve_reloads", "Model reload checks, by result", ["result"], registry=registry)

    def reload() -> bool:
        try:
            changed = champion.refresh()
        except Exception as exc:  # noqa: BLE001 - the old model keeps serving; the failure is counted and logged
            reloads.labels("error").inc()
            print(f"[docscale] reload of {champion.model_uri} failed: {_one_line(exc)}", file=sys.stderr)
            raise
        reloads.labels("changed" if changed else "unchanged").inc()
        model_version.set(float(champion.version))
        return changed

    def reload_forever() -> None:
        while True:
            time.sleep(reload_seconds)
            with contextlib.suppress(Exception):  # counted and printed in reload(); tried again next period
                reload()

    app = FastAPI(title="docscale", docs_url=None, redoc_url=None)
    model_version.set(float(champion.version))
    if reload_seconds > 0:
        threading.Thread(target=reload_forever, daemon=True, name="docscale-reload").start()

    def answer(endpoint: str, code: int, body: dict[str, Any], start: float) -> Any:
        requests.labels(endpoint, str(code)).inc()
        latency.labels(endpoint).observe(time.perf_counter() - start)
        return JSONResponse(body, status_code=code)

    def error(endpoint: str, code: int, reason: str, start: float, **extra: Any) -> Any:
        return answer(endpoint, code, {"error": reason, **extra}, start)

    @app.get("/healthz")
    def healthz() -> Any:
        model, version = champion.get()
        return {
            "status": "ok",
            "model": champion.model_uri,
            "version": version,
            "classifier": model.name,
            "feature_version": model.feature_version,  # what it was trained on (processing.features show)
            "classes": model.classes,
        }

    @app.get("/metrics")
    def metrics() -> Any:
        model, _ = champion.get()
        replaced.set(model.workers_replaced)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/reload")
    async def reload_now() -> Any:
        start = time.perf_counter()
        try:
            changed = await run_in_threadpool(reload)
        except Exception as exc:  # noqa: BLE001 - e.g. the registry is unreachable: the old model stays
            return error(
                "reload", 503, f"reload failed, still serving version {champion.version}: {_one_line(exc)}", start
            )
        return answer("reload", 200, {"version": champion.version, "changed": changed}, start)

    @app.post("/v1/classify")
    async def classify(request: Request) -> Any:
        start = time.perf_counter()
        model, version = champion.get()
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        limit = model.extract.max_bytes
        if kind == "application/json":
            try:
                payload = await request.json()
            except ValueError:
                return error("classify", 400, "the body is not valid JSON", start)
            paths = payload.get("paths") if isinstance(payload, dict) else payload
            if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
                return error("classify", 400, 'JSON must be {"paths": ["file.pdf", ...]} with at least one path', start)
            refused = [p for p in paths if not path_allowed(p, paths_under or [])]
            if refused:
                allowed = ", ".join(paths_under or [])
                return error("classify", 403, f"{refused[0]!r} is outside --paths-under ({allowed})", start)
            rows = await run_in_threadpool(model.classify_paths, paths)
            for row in rows:
                outcomes.labels(row["outcome"]).inc()
            return answer("classify", 200, {"model_version": version, "results": rows}, start)
        if kind == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=4, max_part_size=limit + 1)
            upload = form.get(UPLOAD_FIELD)
            if upload is None or isinstance(upload, str):
                return error("classify", 400, f"multipart body has no file field named {UPLOAD_FIELD!r}", start)
            name, data = upload.filename or "upload.pdf", await upload.read(limit + 1)
        elif kind in ("application/pdf", "application/octet-stream"):
            name, data = request.headers.get("x-filename", "upload.pdf"), await _read_limited(request, limit + 1)
        else:
            shown = kind or "none"
            return error(
                "classify",
                415,
                f"content type {shown}: send multipart/form-data (field {UPLOAD_FIELD!r}), application/pdf or "
                "application/json",
                start,
            )
        if not data:
            return error("classify", 400, "empty body: send one PDF", start)
        if len(data) > limit:
            outcomes.labels("too_large").inc()
            return error("classify", 413, f"more than extract.max_bytes={limit} bytes", start, outcome="too_large")
        (row,) = await run_in_threadpool(model.classify, [Document(name, data)])
        outcomes.labels(row["outcome"]).inc()
        if row["label"] is None:
            reason = f"{row['outcome']}: {row['message']}".rstrip(": ")
            return error("classify", STATUS_BY_OUTCOME.get(row["outcome"], 422), reason, start, outcome=row["outcome"])
        return answer("classify", 200, {"model_version": version, **row}, start)

    return app


async def _read_limited(request: Any, limit: int) -> bytes:
    """The body, but never more than `limit` bytes held (the caller answers 413 past max_bytes)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen there, before the model is loaded (seconds of work)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another server using it? pass --port)"
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _flag_mistake(args: argparse.Namespace) -> str | None:
    """The first flag out of its range, said as the fix, or None."""
    if not 1 <= args.port <= 65535:
        return f"--port {args.port}: a port is 1 to 65535"
    if args.reload_seconds < 0 or args.reload_seconds != args.reload_seconds:
        return f"--reload-seconds {args.reload_seconds}: seconds >= 0 (0 = never reload)"
    if args.extract_workers is not None and args.extract_workers < 1:
        return f"--extract-workers {args.extract_workers}: at least 1 (or leave it out for the default)"
    for root in args.paths_under:  # a mistyped folder would refuse every path, request after request
        if "://" not in root and not Path(root).is_dir():
            return f"--paths-under {root}: not a folder (give a folder, or an s3://bucket/prefix)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processing.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="default loopback; see README before exposing it")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model", default="models:/docscale-classifier@champion")
    parser.add_argument("--workspace", type=Path, default=Path("workspace"), help="where the default registry is")
    parser.add_argument("--tracking-uri", help="the registry; default: sqlite:///<workspace>/mlflow.db")
    parser.add_argument("--reload-seconds", type=float, default=60.0, help="re-resolve the alias this often; 0 = never")
    parser.add_argument("--extract-workers", type=int, default=None, help="isolated extraction processes")
    parser.add_argument(
        "--paths-under",
        action="append",
        default=[],
        metavar="DIR",
        help="JSON paths may name files under DIR (or an s3://bucket/prefix) only; repeatable; default: any file",
    )
    args = parser.parse_args(argv)
    mistake = _flag_mistake(args)
    if mistake:
        print(f"error: {mistake}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: --host {args.host} reaches beyond this machine; the service has no TLS or authentication of"
            " its own: put a reverse proxy with both in front of it (README, Serving)"
            + ("" if args.paths_under else "; JSON paths may name any file it can read: limit them with --paths-under"),
            file=sys.stderr,
        )
    uri = args.tracking_uri or tracking.default_tracking_uri(args.workspace)
    if problem := tracking.missing_registry(uri):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    problem = port_problem(args.host, args.port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        tracking.check_reachable(uri)
        tracking.use_registry(uri)
        champion = Champion(args.model, args.extract_workers)
        champion.refresh()
    except Exception as exc:  # noqa: BLE001 - no such model/alias, registry down, wrong embedder: one line
        print(f"error: {args.model}: {_one_line(exc)}", file=sys.stderr)
        return 2
    import uvicorn

    print(f"[docscale] serving {args.model} (version {champion.version}) on http://{args.host}:{args.port}", flush=True)
    try:
        app = create_app(champion, args.reload_seconds, args.paths_under)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        if champion.model is not None:
            champion.model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
