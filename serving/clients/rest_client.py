"""A REST client for any TF Serving endpoint (the real tensorflow_model_server or serving/server/).

The same calls as grpc_client.py, over TF Serving's REST API (/v1/models/...); request ids
travel in the x-request-id header.
"""
from __future__ import annotations

import base64
import json
import urllib.parse
from typing import Mapping, Sequence

import numpy as np
import urllib3

from serving.clients.call_defaults import CLASSIFY_SIGNATURE, PREDICT_SIGNATURE, REGRESS_SIGNATURE, pick_output
from serving.clients.request_encoding import FeatureTypes, json_examples, serialized_examples
from serving.request_ids import HEADER, Predictions, header_value, new_id, row_ids


class RestClient:
    """Pooled keep-alive HTTP connections; examples travel base64-encoded as {"b64": ...}.

    Talks to urllib3's connection pool directly: requests' per-call machinery (sessions,
    hooks, adapters) cost more CPU than the server's whole REST handling.
    `feature_types` ({name: "int" | "float" | "bytes"}) says how rows become tf.Examples.
    """

    def __init__(self, base_url: str, model_name: str, feature_types: FeatureTypes, timeout: float = 10.0,
                 version: int | None = None, version_label: str | None = None):
        self.feature_types = dict(feature_types)
        path = f"/v1/models/{urllib.parse.quote(model_name, safe='')}"
        if version is not None:
            path += f"/versions/{version}"
        elif version_label:
            path += f"/labels/{urllib.parse.quote(version_label, safe='')}"
        base = urllib.parse.urlsplit(base_url)
        self.path = base.path.rstrip("/") + path  # + ":predict", ":classify" or ":regress"
        self.url = f"{base.scheme}://{base.netloc}{self.path}"
        self.pool = urllib3.connection_from_url(f"{base.scheme}://{base.netloc}", maxsize=32,
                                                timeout=urllib3.Timeout(total=timeout), retries=False)

    def _post(self, verb: str, body: dict, request_id: str | None = None) -> tuple[dict, str | None]:
        """(the answer, the x-request-id the server echoed or None)."""
        headers = {"Content-Type": "application/json"}
        if request_id:
            headers[HEADER] = request_id
        reply = self.pool.urlopen("POST", f"{self.path}:{verb}", body=json.dumps(body), headers=headers)
        if reply.status != 200:
            raise RuntimeError(f"{self.url}:{verb} answered {reply.status}: "
                               f"{reply.data[:500].decode('utf-8', 'replace')}")
        return json.loads(reply.data), reply.headers.get(HEADER)

    def _json_examples(self, rows: Sequence[Mapping[str, str]]) -> list[dict]:
        return json_examples(rows, self.feature_types)

    def predict(self, rows: Sequence[Mapping[str, str]], signature: str = PREDICT_SIGNATURE,
                output_key: str | None = None, request_ids: Sequence[str] | str | None = None) -> np.ndarray:
        """One value per row: the signature's output `output_key`, or its only output when
        None. The examples go as the signature's only input (REST's row format), so no
        input name is needed; floats come back as float32. `request_ids`: one id (a str) for
        the request, or one per row, sent as x-request-id."""
        return self._predict(rows, signature, output_key, header_value(request_ids, len(rows)))[0]

    def predict_with_ids(self, rows: Sequence[Mapping[str, str]], request_ids: Sequence[str] | str | None = None,
                         signature: str = PREDICT_SIGNATURE, output_key: str | None = None) -> Predictions:
        """predict's values with each row's request id, as the server echoed and logged it. Without
        `request_ids` the client makes one, so a server that echoes none still gives the ids sent."""
        sent = header_value(request_ids, len(rows)) or new_id()
        values, echo = self._predict(rows, signature, output_key, sent)
        return Predictions(values, row_ids(echo or sent, len(rows))[1])

    def _predict(self, rows: Sequence[Mapping[str, str]], signature: str, output_key: str | None,
                 request_id: str | None) -> tuple[np.ndarray, str | None]:
        instances = [{"b64": base64.b64encode(example).decode()}
                     for example in serialized_examples(rows, self.feature_types)]
        reply, echo = self._post("predict", {"signature_name": signature, "instances": instances}, request_id)
        predictions = reply["predictions"]
        # TF Serving names the outputs only when there are several: a dict per row.
        if predictions and isinstance(predictions[0], dict):
            key = pick_output(predictions[0], output_key, signature)
            predictions = [prediction[key] for prediction in predictions]
        values = np.array(predictions)
        return (values.astype(np.float32) if values.dtype.kind == "f" else values).reshape(-1), echo

    def classify(self, rows: Sequence[Mapping[str, str]],
                 signature: str = CLASSIFY_SIGNATURE) -> list[list[tuple[str, float]]]:
        reply, _ = self._post("classify", {"signature_name": signature, "examples": self._json_examples(rows)})
        return [[(label, float(score)) for label, score in classes] for classes in reply["results"]]

    def regress(self, rows: Sequence[Mapping[str, str]], signature: str = REGRESS_SIGNATURE) -> np.ndarray:
        reply, _ = self._post("regress", {"signature_name": signature, "examples": self._json_examples(rows)})
        return np.array(reply["results"], dtype=np.float32)

    def close(self) -> None:
        self.pool.close()
