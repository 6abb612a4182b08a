"""Prometheus metrics at `GET /metrics`, and the per-request record the metrics and the request
log share.

Every app gets its own `CollectorRegistry` (never prometheus_client's global one), so any number
of apps live side by side in one process. What is counted, and where:

- requests by endpoint (the route's rule, so arbitrary paths do not make new series), method and
  status: when the response starts (an `after_request` hook), before any of its body is sent;
- requests cancelled because the client went away mid-completion (`stream_completion` notices
  its consumer closing it early), by endpoint and method: the access log shows them as 499;
- prompt tokens evaluated, tokens generated, prompt tokens taken from the prompt cache, time to
  first token and time per output token: by `stream_completion` (and the embed routes for
  prompt tokens) as the engine produces them, so a client that has read its final chunk sees
  counters that already include its request;
- queue depth, active sequences and loaded models: read from the scheduler at scrape time (a
  custom collector), without starting one.

The per-request `RequestRecord` is created by the request-log middleware (access_log.py) and lives
in the WSGI environ, so code that runs after Flask's request context is gone (a stream's
generator) still reaches it: `completion_timer()` captures it while the context exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from pyollama.engine.slots import CompletionResult

RECORD_KEY = "pyollama.request"
EXTENSION = "pyollama.metrics"
UNMATCHED_ENDPOINT = "unmatched"

# Seconds. A CPU-served small model answers its first token in tens of milliseconds; a cold load
# of a big one takes tens of seconds (the first request's TTFT includes the load).
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class RequestRecord:
    """What one request did, filled in as it runs; read by the request log when it ends.

    Written by the request's own thread and, for streams, by the thread that iterates the
    body (waitress uses the same worker thread for both); never shared between requests.
    """

    method: str
    path: str
    metrics: ServerMetrics | None = None
    started: float = field(default_factory=time.perf_counter)
    endpoint: str = ""
    status: int = 0
    model: str = ""
    prompt_eval_count: int = 0
    eval_count: int = 0
    cached_count: int = 0
    first_token_s: float | None = None
    canceled: bool = False  # the client went away before its completion ended (logged as 499)
    body: bytes | None = None  # the request body, kept only when OLLAMA_DEBUG asks for it

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started


def current_record() -> RequestRecord | None:
    """The running request's record, when called inside a request handled by the tracked app."""
    if not has_request_context():
        return None
    record = request.environ.get(RECORD_KEY)
    return record if isinstance(record, RequestRecord) else None


def note_model(name: str) -> None:
    """Observation point: the model a request asked for (routes call it when they look it up)."""
    record = current_record()
    if record is not None:
        record.model = name


def note_prompt_tokens(count: int) -> None:
    """Observation point for work without a completion (embeddings): prompt tokens evaluated."""
    record = current_record()
    if record is None:
        return
    record.prompt_eval_count += count
    if record.metrics is not None and count > 0:
        record.metrics.prompt_tokens.labels(record.model).inc(count)


class CompletionTimer:
    """Times one completion's text pieces and counts its tokens when it ends.

    Each piece the engine hands over is one sampled token, except where the detokenizer holds
    bytes back (a split UTF-8 character, a possible stop string) and joins several: the gaps
    between pieces are the per-token latency a client sees.
    """

    def __init__(self, record: RequestRecord, metrics: ServerMetrics) -> None:
        self._record = record
        self._metrics = metrics
        self._model = record.model
        self._last: float | None = None

    def piece(self) -> None:
        now = time.perf_counter()
        if self._last is None:
            first = now - self._record.started
            if self._record.first_token_s is None:
                self._record.first_token_s = first
            self._metrics.time_to_first_token.labels(self._model).observe(first)
        else:
            self._metrics.time_per_output_token.labels(self._model).observe(now - self._last)
        self._last = now

    def canceled(self) -> None:
        """The completion was cancelled because its consumer went away (the client disconnected)."""
        if not self._record.canceled:
            self._record.canceled = True
            endpoint = self._record.endpoint or UNMATCHED_ENDPOINT
            self._metrics.canceled_requests.labels(endpoint, self._record.method).inc()

    def done(self, result: CompletionResult, cached: int) -> None:
        record = self._record
        record.prompt_eval_count += result.prompt_eval_count
        record.eval_count += result.eval_count
        record.cached_count += cached
        if result.prompt_eval_count:
            self._metrics.prompt_tokens.labels(self._model).inc(result.prompt_eval_count)
        if result.eval_count:
            self._metrics.generated_tokens.labels(self._model).inc(result.eval_count)
        if cached:
            self._metrics.prompt_cache_tokens.labels(self._model).inc(cached)


def completion_timer() -> CompletionTimer | None:
    """A timer bound to the running request (None outside one, or in an untracked app); call it
    while the request context exists, and use it from wherever the completion is consumed."""
    record = current_record()
    if record is None or record.metrics is None:
        return None
    return CompletionTimer(record, record.metrics)


class _EngineCollector(Collector):
    """Gauges read from the scheduler at scrape time; all zero while no scheduler exists."""

    def __init__(self, scheduler: Callable[[], Any]) -> None:
        self._scheduler = scheduler

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "pyollama_queue_depth",
                "Requests waiting: for a model to load or a runner to free up, or for a free sequence",
            ),
            GaugeMetricFamily("pyollama_active_sequences", "Sequences evaluating a prompt or generating"),
            GaugeMetricFamily("pyollama_loaded_models", "Models loaded in memory"),
            GaugeMetricFamily(
                "pyollama_loaded_model_size_bytes", "Memory held by each loaded model", labels=["model"]
            ),
        )

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        queue, active, loaded, sizes = self._families()
        scheduler = self._scheduler()
        models = scheduler.loaded() if scheduler is not None else []
        # getattr: a scheduler handed to create_app (tests, embedders) need not count these
        queue.add_metric([], getattr(scheduler, "queue_depth", 0))
        active.add_metric([], getattr(scheduler, "active_sequences", 0))
        loaded.add_metric([], len(models))
        for model in models:
            sizes.add_metric([model.name], model.size)
        return iter((queue, active, loaded, sizes))


class ServerMetrics:
    """The app's metrics and the registry that exposes them."""

    def __init__(self, scheduler: Callable[[], Any]) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "pyollama_requests",
            "HTTP requests answered, by route, method and status",
            ["endpoint", "method", "status"],
            registry=registry,
        )
        self.canceled_requests = Counter(
            "pyollama_requests_canceled",
            "Requests whose client went away before the completion ended (logged with status 499)",
            ["endpoint", "method"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "pyollama_request_duration_seconds",
            "Time from a request's arrival to the end of its response body (streams included)",
            ["endpoint"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.prompt_tokens = Counter(
            "pyollama_prompt_tokens", "Prompt tokens evaluated (prompt-cache hits excluded)", ["model"],
            registry=registry,
        )
        self.generated_tokens = Counter(
            "pyollama_generated_tokens", "Tokens generated", ["model"], registry=registry
        )
        self.prompt_cache_tokens = Counter(
            "pyollama_prompt_cache_hit_tokens",
            "Prompt tokens reused from a sequence's cached KV instead of being evaluated",
            ["model"],
            registry=registry,
        )
        self.time_to_first_token = Histogram(
            "pyollama_time_to_first_token_seconds",
            "Time from a request's arrival to its first generated token (model load included)",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.time_per_output_token = Histogram(
            "pyollama_time_per_output_token_seconds",
            "Time between consecutive generated tokens of one request",
            ["model"],
            buckets=TOKEN_BUCKETS,
            registry=registry,
        )
        registry.register(_EngineCollector(scheduler))

    def count_request(self, record: RequestRecord) -> None:
        self.requests.labels(record.endpoint or UNMATCHED_ENDPOINT, record.method, str(record.status)).inc()

    def observe_duration(self, record: RequestRecord) -> None:
        self.request_duration.labels(record.endpoint or UNMATCHED_ENDPOINT).observe(record.elapsed_s())


def get_metrics(app: Flask) -> ServerMetrics:
    metrics: ServerMetrics = app.extensions[EXTENSION]
    return metrics


# -- wiring -----------------------------------------------------------------------------------

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    # The format the scraper asks for in Accept (OpenMetrics or text), else the classic text format.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(get_metrics(current_app).registry), status=200, content_type=content_type)


def _count_response(response: Response) -> Response:
    """after_request: the status is final here and no body byte has been sent yet."""
    record = current_record()
    if record is not None and record.metrics is not None:
        rule = request.url_rule
        record.endpoint = rule.rule if rule is not None else UNMATCHED_ENDPOINT
        record.status = response.status_code
        record.metrics.count_request(record)
    return response


def install_metrics(app: Flask, scheduler: Callable[[], Any]) -> ServerMetrics:
    """Give `app` its registry, `GET /metrics` and the request counter; `scheduler` returns the
    running scheduler or None (it must not start one)."""
    metrics = ServerMetrics(scheduler)
    app.extensions[EXTENSION] = metrics
    app.register_blueprint(bp)
    app.after_request(_count_response)
    return metrics


__all__ = [
    "CompletionTimer",
    "RequestRecord",
    "ServerMetrics",
    "completion_timer",
    "current_record",
    "get_metrics",
    "install_metrics",
    "note_model",
    "note_prompt_tokens",
]
