"""Ray Serve applications: predictor slots that each hold one model version, and a router
in front of them.

Why this shape: traffic moves only by changing the ``user_config`` of the router application's
``RoutingTable`` deployment (which the router follows), and a new version loads into an idle
slot by changing that slot's ``user_config``. Serve applies both
in place (``reconfigure``), with no restart, no new process and no build task. That is what
makes a rollout zero-downtime even on a small machine, a canary or shadow a routing setting,
and a rollback to the previous version instant (it stays loaded in its slot).
``pipelines.serving.rollout`` writes the declarative configs and picks the slots.

- ``app_builder(args)`` builds a predictor slot (``PredictorArgs``); its ``user_config``
  (``ModelChoice``) names the version, loaded with its feature scaler from the MLflow registry
  by version or alias and scored with ``@serve.batch``.
- ``router_builder(args)`` builds the HTTP ingress (``RouterArgs``): validation of the use
  case's records (``Learner.request_model``; 422, never a 500, for bad input), optional bearer
  auth, canary split, shadow copies, inference capture to the lake
  (``pipelines.monitoring.capture``; each answer's ``X-Request-Id``), ``/feedback`` (labels
  learned later, ``pipelines.monitoring.feedback``), ``/healthz``, ``/metadata`` and the
  OpenAPI document.

The builders and the router live here; the request/response and argument models in
``ray_jobs.serve_schemas``; loading and scoring (``Predictor``, the router's
``StableMirror``) in ``ray_jobs.predictor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
import random
import time
import uuid
from functools import partial

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from ray import serve
from ray.serve import Application

from pipelines.ml.learner import RequestError
from pipelines.serving.routing import (
    PREDICTOR_DEPLOYMENT,
    REQUEST_ID_HEADER,
    ROUTING_TABLE,
    TOKEN_ENV,
    VERSION_HEADER,
    Routing,
)
from ray_jobs.predictor import Predictor, StableMirror
from ray_jobs.serve_schemas import (
    FeedbackBody,
    FeedbackResponse,
    PredictorArgs,
    PredictResponse,
    Problem,
    RouterArgs,
    request_model_for,
)

log = logging.getLogger("ray.serve")


def app_builder(args: dict) -> Application:
    """A predictor slot application (Serve config ``args``); the version it serves is the
    ``Predictor`` deployment's ``user_config``, ``{"model_version": ...}``."""
    parsed = PredictorArgs.model_validate(args)
    # Serve's default of 5 ongoing requests per replica would cap every batch at 5.
    ongoing = max(2 * parsed.max_batch_size, 8)
    return Predictor.options(
        num_replicas=parsed.num_replicas,
        max_ongoing_requests=ongoing,
        ray_actor_options={"num_cpus": parsed.num_cpus},
    ).bind(parsed)


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is refused (422) before it is parsed,
    whether or not the client sent a Content-Length.

    ``limit`` is a class attribute because the app object is re-imported in each replica
    process: ``Router.__init__`` sets it from ``RouterArgs.max_body_bytes``."""

    limit = RouterArgs.model_fields["max_body_bytes"].default

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send, int(declared))
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._refuse(send, size)
            more = message.get("more_body", False)
        body = b"".join(chunks)

        async def replay():
            nonlocal body
            message, body = {"type": "http.request", "body": body, "more_body": False}, b""
            return message

        return await self.app(scope, replay, send)

    async def _refuse(self, send, size: int):
        text = f"request body of {size}+ bytes exceeds the limit of {self.limit} bytes"
        payload = json.dumps({"message": text}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)),
        ]
        await send({"type": "http.response.start", "status": 422, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _one_line(errors: list[dict]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def _feedback_frame(body: FeedbackBody, numeric: bool):
    """The labels of a ``/feedback`` call as ``write_feedback`` takes them. Defined above
    ``Router`` for the reason ``_capture_writer`` is."""
    import pandas as pd

    if numeric and any(isinstance(item.label, bool) for item in body.labels):
        raise HTTPException(
            status_code=422,
            detail="feedback: this model predicts a number: a label is the true value, "
            "not true/false",
        )
    return pd.DataFrame(
        {
            "_request_id": [item.request_id for item in body.labels],
            "_row": [item.row for item in body.labels],
            "label": [item.label for item in body.labels],
        }
    )


def _capture_writer(args: RouterArgs, learner):
    """The router's ``CaptureWriter``, or None when capture is off. Defined above ``Router``:
    Serve serializes the ingress class as it is decorated, with the globals it sees then."""
    if args.capture is None:
        return None
    from pipelines.monitoring.capture import CaptureConfig, CaptureWriter

    config = CaptureConfig(use_case=args.use_case, **args.capture)
    if config.rate == 0:
        return None
    return CaptureWriter(
        config,
        learner.capture_fields,
        score_field=learner.score_field,
        label_field=learner.decision_field,
    )


api = FastAPI(
    title="Conveyor model endpoint",
    version="3",
    description="Predictions of a use case's model for its records, by registered model version.",
)


class RequestBody:
    """The use case's ``/predict`` body model. Set by ``Router.__init__`` (the app object is
    re-imported in each replica process, and a replica serves one use case); the route reads
    and validates the body itself so one app serves any use case's records."""

    model = None
    media_types: tuple[str, ...] = ("application/json",)


def _openapi() -> dict:
    """FastAPI's document, with the use case's request body (its record's constraints
    included, where client generators and the fuzz test read them)."""
    if api.openapi_schema is None:
        schema = get_openapi(
            title=api.title, version=api.version, description=api.description, routes=api.routes
        )
        if RequestBody.model is not None:
            body = RequestBody.model.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(body.pop("$defs", {}))
            components["PredictRequest"] = body
            content = {
                "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
            }
            for media in RequestBody.media_types:  # files: multipart parts or the raw body
                if media == "multipart/form-data":
                    files = {"type": "array", "items": {"type": "string", "format": "binary"}}
                    content[media] = {"schema": {"type": "object", "properties": {"file": files}}}
                elif media != "application/json":
                    content[media] = {"schema": {"type": "string", "format": "binary"}}
            schema["paths"]["/predict"]["post"]["requestBody"] = {
                "required": True,
                "content": content,
            }
        api.openapi_schema = schema
    return api.openapi_schema


api.openapi = _openapi


api.add_middleware(BodyLimit)


@api.exception_handler(HTTPException)
async def _refused(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"message": str(exc.detail)}, exc.status_code, headers=exc.headers)


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The offending input is not echoed: it may hold NaN, which JSON cannot carry, or secrets.
    errors = [
        {k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in exc.errors()
    ]
    return JSONResponse(
        status_code=422,
        content={"message": _one_line(errors), "detail": jsonable_encoder(errors)},
    )


@serve.deployment(
    name=ROUTING_TABLE,
    ray_actor_options={"num_cpus": 0},
    max_ongoing_requests=1000,
    health_check_period_s=5,
)
class RoutingTable:
    """Which versions get traffic: the ``Routing`` in this deployment's ``user_config``, which
    every router replica follows with a long poll (``watch``).

    Why not the router's own ``user_config``: while Serve applies a ``user_config`` to a
    replica, however quickly, the replica is not RUNNING, and for an ingress replica that
    takes it out of HAProxy's backends. Every routing change sent traffic through Serve's
    fallback proxy and restarted HAProxy, which dominated a rollout's p99. A change here
    touches no ingress replica."""

    def __init__(self):
        self.routing: Routing | None = None
        self._changed = asyncio.Event()

    async def reconfigure(self, user_config: dict) -> None:
        """Serve applies a new routing in place; one that sends traffic to a version no slot
        holds is refused (the update fails, and the rollout puts the old config back)."""
        routing = Routing.model_validate(user_config)
        if routing.unslotted():
            raise ValueError(f"routing sends traffic to versions no slot holds: {routing}")
        self.routing = routing
        self._changed.set()
        self._changed = asyncio.Event()

    def check_health(self) -> None:
        if self.routing is None:
            raise RuntimeError("no routing configured")

    async def watch(self, held: dict | None, timeout_s: float = 30.0) -> dict | None:
        """The routing as soon as it differs from ``held``, or after ``timeout_s`` as it is."""
        if self.routing is None or self.routing.model_dump() == held:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout_s)
        return self.routing.model_dump() if self.routing else None


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=200)
@serve.ingress(api)
class Router:
    """The HTTP face of the model: validates, authenticates and routes by ``Routing``."""

    async def __init__(self, args: RouterArgs, table):
        from pipelines.catalog import learner_of

        self.args = args
        BodyLimit.limit = args.max_body_bytes
        self.learner = learner_of(args.use_case)
        RequestBody.model = request_model_for(self.learner.request_model)
        RequestBody.media_types = tuple(self.learner.request_media_types)
        api.title = f"Conveyor {args.use_case}"
        self.handles: dict[str, object] = {}
        self.shadow_stats = {"requests": 0, "compared": 0, "disagreements": 0, "errors": 0}
        self.shadow_inflight = 0
        self.token = os.environ.get(TOKEN_ENV, "") if args.require_auth else ""
        if args.require_auth and not self.token:
            raise RuntimeError(f"require_auth is set but {TOKEN_ENV} is empty on this node")
        self.mirror = StableMirror() if args.mirror_stable else None
        if self.mirror:
            import pipelines.ml.model  # noqa: F401  torch and pandas now, not while serving
        self.capture = _capture_writer(args, self.learner)
        self.table = table
        self.routing: Routing | None = None
        held = None
        while held is None:  # a router never serves without a routing
            held = await table.watch.remote(None)
        self._follow(held)
        self._watching = asyncio.get_running_loop().create_task(self._watch(held))

    async def _watch(self, held: dict) -> None:
        """Follow the routing table for as long as this replica lives (a long poll: the
        table answers as soon as its routing differs from the one held)."""
        while True:
            try:
                routing = await self.table.watch.remote(held)
            except Exception as exc:  # the table's replica restarting, say
                log.warning("routing table unavailable, asking again in 1 s: %r", exc)
                await asyncio.sleep(1.0)
                continue
            if routing is not None and routing != held:
                self._follow(routing)
                held = routing

    def _follow(self, user_config: dict) -> None:
        """Route by a new routing (from one request to the next, nothing is dropped); the new
        stable version is then copied into this process in the background."""
        routing = Routing.model_validate(user_config)
        self.routing = routing
        log.info("routing=%s", routing.model_dump())
        if self.mirror:
            self.mirror.follow(routing.stable, routing.incoming, partial(self._export, routing))

    async def _export(self, routing: Routing, version: str) -> bytes:
        return await self._call(routing.slots[version], version, "export")

    def __del__(self):
        """Serve calls this when it stops the replica gracefully: what capture holds is
        written before the process goes."""
        capture = getattr(self, "capture", None)
        if capture is not None:
            capture.close()

    def check_health(self) -> None:
        """A router that stopped following the routing table is restarted by Serve."""
        if self._watching.done():
            raise RuntimeError(f"stopped following the routing table: {self._watching!r}")

    def _handle(self, app: str):
        """A handle to the predictor slot application ``app`` (one per slot, kept)."""
        if app not in self.handles:
            self.handles[app] = serve.get_deployment_handle(
                PREDICTOR_DEPLOYMENT, app_name=app, _check_exists=False
            )
        return self.handles[app]

    def _authorize(self, request: Request) -> None:
        if not self.token:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), self.token):
            raise HTTPException(
                status_code=401,
                detail="missing or invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def _pick(self, pinned: str | None) -> tuple[str, str, str]:
        """(version, served_by, slot application) from one routing snapshot."""
        routing = self.routing
        if pinned:
            if not pinned.isdigit():
                raise HTTPException(status_code=422, detail=f"{VERSION_HEADER} must be a number")
            if pinned not in routing.slots:
                raise HTTPException(
                    status_code=404, detail=f"model version {pinned} is not deployed"
                )
            return pinned, "pinned", routing.slots[pinned]
        if routing.canary and random.random() < routing.canary_fraction:
            return routing.canary, "canary", routing.slots[routing.canary]
        return routing.stable, "stable", routing.slots[routing.stable]

    async def _call(self, app: str, version: str, method: str, *args):
        handle = getattr(self._handle(app), method)
        try:
            return await asyncio.wait_for(handle.remote(*args), self.args.request_timeout_s)
        except TimeoutError:
            raise HTTPException(status_code=503, detail=f"version {version} timed out") from None
        except Exception as exc:  # a replica died or raised: the client gets a clear 503
            log.warning("version=%s %s failed: %r", version, method, exc)
            raise HTTPException(
                status_code=503, detail=f"model version {version} is unavailable"
            ) from None

    @api.post(
        "/predict",
        response_model=PredictResponse,
        responses={401: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}},
    )
    async def predict(self, request: Request) -> JSONResponse:
        """Predictions for one record or a batch; the answer names the version."""
        self._authorize(request)
        records = await self._records(request)
        version, served_by, app = self._pick(request.headers.get(VERSION_HEADER))
        answer = await self._predict(app, version, records)
        if served_by == "pinned" and answer["model_version"] != version:
            # The slot was reloaded with another version since this routing was read.
            raise HTTPException(status_code=503, detail=f"model version {version} is unavailable")
        score = self.learner.score_field
        if not all(math.isfinite(p[score]) for p in answer["predictions"]):
            log.error("version=%s scored a non-finite probability", version)
            raise HTTPException(status_code=503, detail=f"model version {version} failed to score")
        routing = self.routing
        if routing.shadow and served_by != "pinned":
            self._shadow(routing.slots[routing.shadow], routing.shadow, records, answer)
        answer["served_by"] = served_by
        # Serve's request id, which it returns as X-Request-Id: the client's own when it sent
        # one, else one Serve (or its HAProxy ingress) made up.
        request_id = request.headers.get(REQUEST_ID_HEADER, "")[:128] or uuid.uuid4().hex
        if self.capture:
            meta = {
                "request_id": request_id,
                "model_version": answer["model_version"],
                "served_by": served_by,
            }
            self.capture.offer(records, answer["predictions"], meta)
        return JSONResponse(answer, headers={VERSION_HEADER: answer["model_version"]})

    async def _records(self, request: Request) -> list[dict]:
        """The request's records: JSON validated by the learner's record model, or, for a
        learner that reads its own requests (files, images), what it makes of the body, in a
        worker thread so decoding never blocks the event loop."""
        body = await request.body()
        if self.learner.parses_requests:
            content_type = request.headers.get("content-type", "")
            try:
                return await asyncio.to_thread(self.learner.parse_request, content_type, body)
            except RequestError as exc:
                raise HTTPException(status_code=exc.status, detail=str(exc)) from None
        try:
            parsed = RequestBody.model.model_validate_json(body)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        return [r.model_dump() for r in parsed.records]

    async def _predict(self, app: str, version: str, records: list[dict]) -> dict:
        """In this process when the mirror holds ``version``, else in its slot."""
        mirror = self.mirror
        if mirror and mirror.version == version:
            try:
                return await mirror.predict(records)
            except Exception as exc:  # never seen; the slot holds the same version
                log.error("in-process version=%s failed, asking its slot: %r", version, exc)
        return await self._call(app, version, "predict", records)

    def _shadow(self, app: str, version: str, records: list[dict], primary: dict) -> None:
        """Send a copy to the shadow version and log how it differs; never awaited by the
        client, and dropped (counted) when too many copies are already in flight."""
        self.shadow_stats["requests"] += 1
        if self.shadow_inflight >= 32:
            self.shadow_stats["errors"] += 1
            return
        self.shadow_inflight += 1
        asyncio.get_running_loop().create_task(self._compare(app, version, records, primary))

    async def _compare(self, app: str, version: str, records: list[dict], primary: dict):
        started = time.perf_counter()
        try:
            answer = await self._call(app, version, "predict", records)
        except Exception as exc:  # the shadow's failure is logged, never surfaced
            self.shadow_stats["errors"] += 1
            log.warning("shadow version=%s failed: %s", version, exc)
            return
        finally:
            self.shadow_inflight -= 1
        score, decision = self.learner.score_field, self.learner.decision_field
        ours = [p[score] for p in primary["predictions"]]
        theirs = [p[score] for p in answer["predictions"]]
        flips = sum(  # a use case without a decision (a regressor) never flips
            a.get(decision) != b.get(decision)
            for a, b in zip(primary["predictions"], answer["predictions"], strict=True)
        )
        self.shadow_stats["compared"] += 1
        self.shadow_stats["disagreements"] += int(flips > 0)
        log.info(
            "shadow version=%s primary=%s max_abs_diff=%.4f flips=%d ms=%.1f",
            version,
            primary["model_version"],
            max(abs(a - b) for a, b in zip(ours, theirs, strict=True)),
            flips,
            (time.perf_counter() - started) * 1000,
        )

    @api.get("/healthz")
    def healthz(self) -> dict:
        """Liveness of the router, what it routes to, which version it scores in its own
        process (``in_process``; null while that version's copy is on its way) and the copies
        it holds ahead of a switch (``staged``). No auth, no model call."""
        in_process, staged = (
            (self.mirror.version, sorted(self.mirror.staged)) if self.mirror else (None, [])
        )
        return {
            "status": "ok",
            "routing": self.routing.model_dump(),
            "in_process": in_process,
            "staged": staged,
        }

    @api.post(
        "/feedback",
        response_model=FeedbackResponse,
        responses={401: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
    )
    async def feedback(self, request: Request, body: FeedbackBody) -> dict:
        """The truth about answers given earlier (by their ``X-Request-Id`` and position),
        joined to the captured answers for live precision and recall. Written to the lake
        before the reply: a 200 means every label of the call is kept, any error that none
        is."""
        self._authorize(request)
        if not self.capture:
            raise HTTPException(
                status_code=404,
                detail="capture is off on this endpoint: there are no answers to label",
            )
        from pipelines.monitoring.feedback import write_feedback

        labels = _feedback_frame(body, numeric=not self.learner.decision_field)
        config = self.capture.config
        try:
            await asyncio.to_thread(
                write_feedback,
                config.root,
                config.use_case,
                labels,
                numeric=not self.learner.decision_field,
            )
        except ValueError as exc:  # a label the learner's task cannot take
            raise HTTPException(status_code=422, detail=str(exc)) from None
        return {"labels": len(labels)}

    @api.get("/metadata", responses={401: {"model": Problem}})
    async def metadata(self, request: Request) -> dict:
        """The serving versions: name, version, alias, training partitions, input schema."""
        self._authorize(request)
        routing = self.routing
        versions = {"stable": routing.stable, "canary": routing.canary, "shadow": routing.shadow}
        out = {"routing": routing.model_dump(), "shadow_stats": dict(self.shadow_stats)}
        out["capture_stats"] = dict(self.capture.stats) if self.capture else None
        for role, version in versions.items():
            slot = routing.slots.get(version)
            out[role] = await self._call(slot, version, "metadata") if version else None
        return out


def router_builder(args: dict) -> Application:
    """The HTTP ingress (Serve config ``args``); its routing is the ``user_config`` of the
    application's ``RoutingTable`` deployment. A bad capture config fails here, at deploy."""
    parsed = RouterArgs.model_validate(args)
    if parsed.capture is not None:
        from pipelines.monitoring.capture import CaptureConfig

        CaptureConfig(use_case=parsed.use_case, **parsed.capture)
    return Router.options(num_replicas=parsed.num_replicas).bind(parsed, RoutingTable.bind())
