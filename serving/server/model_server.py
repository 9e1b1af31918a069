"""A model server that TF Serving clients cannot tell from tensorflow_model_server for
the calls this project uses: REST on --rest_api_port, gRPC on --port, versions polled
from --model_base_path (e.g. where a TFX Pusher writes). It serves any SavedModel.

    python -m serving.server --model_name=taxi-tips --model_base_path=out/serving/taxi-tips \\
        --port=8500 --rest_api_port=8501

--routing_config_file splits a model's requests between its version labels by weight, sticky by a
routing key, and can shadow a version (serving/server/routing.py, shadow.py; tensorflow_model_server
has no such flag: production routes in a proxy in front of it, see serving/README.md).

Binds 127.0.0.1 unless --host says otherwise. Production runs the real
tensorflow_model_server with the same flags; clients do not change. Limits TF Serving does
not have (REST idle and body timeouts, the reload RPC's guard) are described in
serving/README.md, "Limits and faults".
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import os
import signal
import sys
import threading
import time
import warnings

# Google Cloud client libraries (pulled in by TensorFlow's dependencies) warn about Python
# and grpcio versions at import; nothing an operator can act on.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\..*)?$")
import tf_environment  # noqa: F401,E402  (before anything imports TensorFlow)

# isort: split

import grpc  # noqa: E402
from aiohttp import web  # noqa: E402
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # noqa: E402
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc  # noqa: E402

from serving.server.batching import Batcher, BatchingParameters, read_batching_parameters  # noqa: E402
from serving.server.errors import ServingError  # noqa: E402
from serving.server.grpc_api import ModelService, PredictionService  # noqa: E402
from serving.server.metrics import ServerMetrics, read_monitoring_config  # noqa: E402
from serving.server.model_config import (  # noqa: E402
    ModelEntry,
    apply_entry,
    check_labels_loadable,
    read_model_config,
)
from serving.server.model_store import ModelStore, VersionPolicy  # noqa: E402
from serving.server.request_log import RequestLog  # noqa: E402
from serving.server.rest_api import RestApi  # noqa: E402
from serving.server.routing import DEFAULT_POLL_SECONDS, Router, RoutingFileError  # noqa: E402
from serving.server.shadow import DEFAULT_QUEUE_SIZE as SHADOW_QUEUE_SIZE  # noqa: E402
from serving.server.shadow import ShadowRunner  # noqa: E402

log = logging.getLogger("serving")
# Large enough for batches of serialized examples; gRPC messages and REST bodies alike.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# TF Serving's grpc.health.v1 service names (server.cc), besides "" and each model's name.
HEALTH_SERVICES = ("ModelService", "PredictionService")


class _Health(health.HealthServicer):
    """grpc.health.v1 whose Check looks at the models first: stores handed to ModelServer may
    report their loads to someone else (no event reaches the server for them)."""

    def __init__(self, refresh):
        super().__init__()
        self._refresh = refresh

    def Check(self, request, context):
        self._refresh()
        return super().Check(request, context)


class ModelServer:
    """gRPC and REST front ends over one ModelStore per model; ports 0 pick free ones."""

    def __init__(self, models: dict[str, ModelStore], host: str = "127.0.0.1",
                 metrics: ServerMetrics | None = None, metrics_path: str | None = None,
                 request_log: RequestLog | None = None, batcher: Batcher | None = None,
                 method_name_check: bool = False, rest_idle_timeout: float = 75.0, rest_body_timeout: float = 60.0,
                 reload_roots: list[str] | None = None, allow_remote_reload: bool = False,
                 routing_file: str | None = None, routing_poll_seconds: float = DEFAULT_POLL_SECONDS,
                 shadow_queue_size: int = SHADOW_QUEUE_SIZE):
        """`rest_idle_timeout`: seconds an idle REST connection is kept; `rest_body_timeout`: seconds a
        request body may take to arrive. HandleReloadConfigRequest is taken from loopback peers only
        (unless `allow_remote_reload`) and for base paths inside `reload_roots` (None: the base paths
        of the models served when the server starts). `routing_file`: the routing JSON, applied at
        start (RoutingFileError if it cannot be) and re-read every `routing_poll_seconds` when it
        changes; `shadow_queue_size`: shadow calls that may wait, more are dropped."""
        self.models, self.host, self.request_log, self.batcher = models, host, request_log, batcher
        self.method_name_check = method_name_check
        self.metrics, self.metrics_path = metrics or ServerMetrics(), metrics_path
        self.metrics.models = self.models  # metric labels only for served models
        self.rest_idle_timeout, self.rest_body_timeout = rest_idle_timeout, rest_body_timeout
        self.reload_roots, self.allow_remote_reload = reload_roots, allow_remote_reload
        self.router = Router(routing_file, self.metrics, routing_poll_seconds)
        self.shadow = ShadowRunner(self.metrics, request_log, shadow_queue_size)
        self.health = _Health(self._update_health)
        self._health_lock = threading.Lock()
        self.grpc_port = self.rest_port = 0
        self._grpc: grpc.aio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def apply_config(self, entries: list[ModelEntry], poll_seconds: float = 1.0) -> None:
        """Serve exactly the models in `entries` (a reloaded model config replaces the old one).

        A label on a version that is not AVAILABLE raises TF Serving's FAILED_PRECONDITION and
        keeps the old labels (model_config.py says when the rest of the config still applies).
        """
        check_labels_loadable(entries)  # refused before anything changes
        wanted = {entry.name: entry for entry in entries}
        for name in [name for name in self.models if name not in wanted]:
            self.models.pop(name).stop()
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        refused = []
        for entry in entries:
            if entry.name not in self.models:
                store = ModelStore(entry.name, entry.base_path, poll_seconds, self._load_event, entry.policy, {})
                store.start()
                self.models[entry.name] = store
            try:
                apply_entry(self.models[entry.name], entry)  # loads first, then moves the labels
            except ServingError as error:
                refused.append(error)
        self._update_health()
        if refused:
            raise refused[0]

    def _load_event(self, model: str, version: int, event: str) -> None:
        self.metrics.loads.labels(model, str(version), event).inc()
        self._update_health()

    def _update_health(self) -> None:
        """grpc.health.v1: a model is SERVING while one of its versions is AVAILABLE; the server ("" and
        TF Serving's service names) once every configured model is. TF Serving opens its ports only then."""
        serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
        with self._health_lock:  # load events come from several poller threads
            stores = list(self.models.items())
            every = bool(stores)
            for name, store in stores:
                available = any(state.state == "AVAILABLE" for state in store.statuses_or_empty())
                self.health.set(name, serving if available else not_serving)
                every = every and available
            for service in ("", *HEALTH_SERVICES):
                self.health.set(service, serving if every else not_serving)

    def start(self, grpc_port: int = 0, rest_port: int = 0) -> "ModelServer":
        """Both front ends on one asyncio loop in a thread of their own; rest_port < 0 leaves REST off."""
        if self.router.path:
            self.router.load()  # a bad routing file stops the start, before a port opens
        for store in self.models.values():
            store.start()
        if self.reload_roots is None:
            self.reload_roots = sorted({store.base_path for store in self.models.values()})
        self._update_health()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="serving-loop", daemon=True)
        self._thread.start()
        try:
            starting = asyncio.run_coroutine_threadsafe(self._start_front_ends(grpc_port, rest_port), self._loop)
            starting.result(timeout=30)
        except BaseException:
            self.stop()  # e.g. a port in use: nothing half-started stays behind
            raise
        return self

    async def _start_front_ends(self, grpc_port: int, rest_port: int) -> None:
        # Handlers that are not coroutines (metadata, model status and reload, health) run on
        # the thread pool; prediction calls are coroutines on the loop.
        self._grpc = grpc.aio.server(
            migration_thread_pool=concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="grpc"),
            options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                     ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                     # gRPC shares a port with SO_REUSEPORT by default: a second server
                     # started by mistake would silently take half the traffic.
                     ("grpc.so_reuseport", 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionService(self.models, self.metrics, self.request_log, self.batcher, self.method_name_check,
                              max_tensor_bytes=MAX_MESSAGE_BYTES, router=self.router, shadow=self.shadow),
            self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelService(self.models, self.apply_config, self.reload_roots, self.allow_remote_reload), self._grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"{self.host}:{grpc_port}")
        await self._grpc.start()
        if rest_port >= 0:
            self._runner = web.AppRunner(
                RestApi(self.models, self.metrics, self.metrics_path, self.request_log, self.batcher,
                        self.method_name_check, max_body_bytes=MAX_MESSAGE_BYTES,
                        body_timeout=self.rest_body_timeout, router=self.router, shadow=self.shadow).app(),
                access_log=None, keepalive_timeout=self.rest_idle_timeout)  # aiohttp keeps idle ones an hour
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, rest_port)
            await site.start()
            self.rest_port = site._server.sockets[0].getsockname()[1]
        self.router.start()  # re-read the routing file from now on

    async def _stop_front_ends(self) -> None:
        if self._grpc:
            await self._grpc.stop(grace=2)
        if self._runner:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop:
            asyncio.run_coroutine_threadsafe(self._stop_front_ends(), self._loop).result(timeout=15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self.router.stop()
        self.shadow.stop()  # its last records go to the request log before that closes
        for store in self.models.values():
            store.stop()
        if self.request_log:
            self.request_log.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (TF Serving's --port)")
    parser.add_argument("--rest_api_port", type=int, default=8501, help="REST port; 0 picks a free one")
    parser.add_argument("--model_name", help="one model's name (or use --model_config_file)")
    parser.add_argument("--model_base_path", help="folder of numeric version folders")
    parser.add_argument("--model_config_file", help="text ModelServerConfig: models, version policies, labels")
    parser.add_argument("--model_config_file_poll_wait_seconds", type=float, default=0,
                        help="re-read --model_config_file this often (0: only at start)")
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0)
    parser.add_argument("--monitoring_config_file", help="text MonitoringConfig; enables Prometheus metrics "
                        "on the REST port")
    parser.add_argument("--enable_batching", action="store_true", help="batch concurrent predict calls")
    parser.add_argument("--batching_parameters_file", help="text BatchingParameters (max_batch_size, "
                        "batch_timeout_micros, num_batch_threads, max_enqueued_batches); implies --enable_batching")
    parser.add_argument("--enable_signature_method_name_check", action="store_true",
                        help="serve a signature only through the API its method_name names (predict also "
                        "serves classify and regress signatures), as tensorflow_model_server does")
    parser.add_argument("--request_log_file", help="TFRecord file of sampled PredictionLog records, appended to; "
                        "rotated files are <stem>.<UTC time>Z-<seq><ext> beside it (read by the skew check)")
    parser.add_argument("--request_log_sample_rate", type=float, default=1.0, help="share of requests logged")
    parser.add_argument("--request_log_max_bytes", type=int, default=64 * 1024 * 1024,
                        help="rotate the request log before it grows past this size")
    parser.add_argument("--request_log_max_age_seconds", type=float, default=0,
                        help="also rotate it after this long (0: by size only)")
    parser.add_argument("--request_log_max_files", type=int, default=10,
                        help="request-log files kept, the current one included; older ones are deleted (0: all)")
    parser.add_argument("--request_log_queue_size", type=int, default=1000,
                        help="records waiting for the writer; more are dropped (and counted), never delaying a request")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    parser.add_argument("--rest_api_idle_timeout_seconds", type=float, default=75.0,
                        help="close a REST connection idle this long (not in TF Serving)")
    parser.add_argument("--rest_api_body_timeout_seconds", type=float, default=60.0,
                        help="answer 408 and close a REST connection whose body takes longer (not in TF Serving)")
    parser.add_argument("--allow_remote_reload", action="store_true",
                        help="take HandleReloadConfigRequest from any peer, not only loopback (TF Serving takes "
                        "it from any)")
    parser.add_argument("--routing_config_file", help="JSON routing file: per model, weights of its version labels "
                        "(sticky by a routing key header), and a shadow version (see serving/README.md, Routing); "
                        "not in TF Serving")
    parser.add_argument("--routing_config_poll_wait_seconds", type=float, default=DEFAULT_POLL_SECONDS,
                        help="re-read --routing_config_file this often, applied when its content changed (0: only "
                        "at start)")
    parser.add_argument("--shadow_queue_size", type=int, default=SHADOW_QUEUE_SIZE,
                        help="shadow calls waiting to run; more are dropped (and counted), never delaying a request")
    parser.add_argument("--model_config_root", action="append", metavar="FOLDER",
                        help="a folder HandleReloadConfigRequest may load models from (repeatable; default: the "
                        "base paths configured at start and the model config file's folder)")
    return parser


def _entries(args) -> list[ModelEntry]:
    if args.model_config_file:
        if args.model_name or args.model_base_path:
            raise ValueError("give either --model_config_file or --model_name/--model_base_path, not both")
        return read_model_config(args.model_config_file)
    if not (args.model_name and args.model_base_path):
        raise ValueError("give --model_name and --model_base_path, or --model_config_file")
    if not os.path.isdir(args.model_base_path):
        raise ValueError(f"--model_base_path {args.model_base_path} is not a folder; point it at the Pusher's "
                         "serving dir (out/serving/<pipeline name>)")
    return [ModelEntry(args.model_name, args.model_base_path, VersionPolicy(), {})]


def _reload_roots(args, entries: list[ModelEntry]) -> list[str]:
    if args.model_config_root:
        return list(args.model_config_root)
    roots = {entry.base_path for entry in entries}
    if args.model_config_file:
        roots.add(os.path.dirname(os.path.abspath(args.model_config_file)))
    return sorted(roots)


def _watch_config(server: ModelServer, path: str, every: float, poll_seconds: float) -> None:
    """Re-read the model config file; a broken edit is logged and the running config kept."""
    last = None
    while True:
        try:
            text = open(path).read()
            if text != last:
                server.apply_config(read_model_config(path), poll_seconds)
                last = text
        except (OSError, ValueError, ServingError) as error:
            log.error("model config %s not applied: %s", path, error)
        time.sleep(every)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        entries = _entries(args)
        metrics_path = read_monitoring_config(args.monitoring_config_file) if args.monitoring_config_file else None
        metrics = ServerMetrics()  # the request log counts its lost records in the server's metrics
        request_log = (RequestLog(args.request_log_file, args.request_log_sample_rate, metrics=metrics,
                                  max_bytes=args.request_log_max_bytes,
                                  max_age_seconds=args.request_log_max_age_seconds,
                                  max_files=args.request_log_max_files, queue_size=args.request_log_queue_size)
                       if args.request_log_file else None)
        batcher = None
        if args.enable_batching or args.batching_parameters_file:
            batcher = Batcher(read_batching_parameters(args.batching_parameters_file)
                              if args.batching_parameters_file else BatchingParameters())
    except (OSError, ValueError, ServingError) as error:
        print(f"serving: {error}", file=sys.stderr)
        return 2
    server = ModelServer({}, args.host, metrics, metrics_path, request_log, batcher,
                         args.enable_signature_method_name_check,
                         rest_idle_timeout=args.rest_api_idle_timeout_seconds,
                         rest_body_timeout=args.rest_api_body_timeout_seconds,
                         reload_roots=_reload_roots(args, entries), allow_remote_reload=args.allow_remote_reload,
                         routing_file=args.routing_config_file,
                         routing_poll_seconds=args.routing_config_poll_wait_seconds,
                         shadow_queue_size=args.shadow_queue_size)
    try:
        server.apply_config(entries, args.file_system_poll_wait_seconds)
    except ServingError as error:  # a label on a version that did not load: tensorflow_model_server stops too
        print(f"serving: {error.message}", file=sys.stderr)
        server.stop()
        return 2
    try:
        server.start(args.port, args.rest_api_port)
    except RoutingFileError as error:
        print(f"serving: {error}; fix the file (or leave --routing_config_file out to serve without routing)",
              file=sys.stderr)
        server.stop()
        return 2
    except (OSError, RuntimeError) as error:  # a port in use, most often
        print(f"serving: cannot listen on gRPC port {args.port} and REST port {args.rest_api_port} of "
              f"{args.host}: {error}; free them or pick others with --port / --rest_api_port", file=sys.stderr)
        return 2
    log.info("serving %s: gRPC %s:%d, REST %s:%d", ", ".join(e.name for e in entries), args.host,
             server.grpc_port, args.host, server.rest_port)
    if args.model_config_file and args.model_config_file_poll_wait_seconds > 0:
        threading.Thread(target=_watch_config, daemon=True, args=(
            server, args.model_config_file, args.model_config_file_poll_wait_seconds,
            args.file_system_poll_wait_seconds)).start()
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
