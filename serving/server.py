"""A model server that TF Serving clients cannot tell from tensorflow_model_server for
the calls this project uses: REST on --rest_api_port, gRPC on --port, versions polled
from --model_base_path (where the pipeline's Pusher writes).

    python -m serving.server --model_name=taxi-tips --model_base_path=out/serving/taxi-tips \\
        --port=8500 --rest_api_port=8501

Binds 127.0.0.1 unless --host says otherwise. Production runs the real
tensorflow_model_server with the same flags; clients do not change.
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
import warnings

# Google Cloud client libraries (pulled in by TensorFlow's dependencies) warn about Python
# and grpcio versions at import; nothing an operator can act on.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\..*)?$")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
from aiohttp import web  # noqa: E402
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc  # noqa: E402

from serving.grpc_api import ModelService, PredictionService  # noqa: E402
from serving.metrics import ServerMetrics, read_monitoring_config  # noqa: E402
from serving.model_store import ModelStore  # noqa: E402
from serving.rest_api import RestApi  # noqa: E402

log = logging.getLogger("serving")
# Large enough for batches of serialized examples, like TF Serving's own limit.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class ModelServer:
    """gRPC and REST front ends over one ModelStore per model; ports 0 pick free ones."""

    def __init__(self, models: dict[str, ModelStore], host: str = "127.0.0.1",
                 metrics: ServerMetrics | None = None, metrics_path: str | None = None):
        self.models, self.host = models, host
        self.metrics, self.metrics_path = metrics or ServerMetrics(), metrics_path
        self.grpc_port = self.rest_port = 0
        self._grpc: grpc.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(self, grpc_port: int = 0, rest_port: int = 0) -> "ModelServer":
        for store in self.models.values():
            store.start()
        self._grpc = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=16), options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionService(self.models, self.metrics), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(self.models), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"{self.host}:{grpc_port}")
        self._grpc.start()
        if rest_port >= 0:
            ready = threading.Event()
            self._thread = threading.Thread(target=self._serve_rest, args=(rest_port, ready), daemon=True)
            self._thread.start()
            if not ready.wait(30):
                raise RuntimeError("the REST server did not start within 30 s")
        return self

    def _serve_rest(self, port: int, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(RestApi(self.models, self.metrics, self.metrics_path).app(), access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, port)
        self._loop.run_until_complete(site.start())
        self.rest_port = site._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._grpc:
            self._grpc.stop(grace=2).wait()
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        for store in self.models.values():
            store.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (TF Serving's --port)")
    parser.add_argument("--rest_api_port", type=int, default=8501, help="REST port; 0 picks a free one")
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--model_base_path", required=True, help="folder of numeric version folders")
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0)
    parser.add_argument("--monitoring_config_file", help="text MonitoringConfig; enables Prometheus metrics "
                        "on the REST port")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not os.path.isdir(args.model_base_path):
        print(f"serving: --model_base_path {args.model_base_path} is not a folder; point it at the Pusher's "
              "serving dir (out/serving/<pipeline name>)", file=sys.stderr)
        return 2
    try:
        metrics_path = read_monitoring_config(args.monitoring_config_file) if args.monitoring_config_file else None
    except (OSError, ValueError) as error:
        print(f"serving: --monitoring_config_file: {error}", file=sys.stderr)
        return 2
    metrics = ServerMetrics()
    store = ModelStore(args.model_name, args.model_base_path, args.file_system_poll_wait_seconds,
                       on_event=lambda model, version, event: metrics.loads.labels(model, str(version), event).inc())
    server = ModelServer({args.model_name: store}, args.host, metrics, metrics_path).start(
        args.port, args.rest_api_port)
    log.info("serving %s from %s: gRPC %s:%d, REST %s:%d", args.model_name, args.model_base_path,
             args.host, server.grpc_port, args.host, server.rest_port)
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
