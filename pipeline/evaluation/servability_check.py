"""ServabilityCheck: the candidate must answer in serving/server/ before Pusher may push it.

The check itself is in pipeline/evaluation/servability.py.
"""
# No `from __future__ import annotations`: TFX reads the @component annotations as types.
import os

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from pipeline.evaluation.servability import (
    BLESSED_FILE,
    NOT_BLESSED_FILE,
    REPORT_PROPERTY,
    check_servable,
    eval_rows,
    serialized_examples,
)


@component
def ServabilityCheck(
    model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    blessing: OutputArtifact[standard_artifacts.InfraBlessing],
    model_name: Parameter[str],
) -> None:
    source = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
    stamped = path_utils.stamped_model_path(blessing.uri)
    rows = eval_rows(examples)
    if tf.io.gfile.exists(stamped):
        tf.io.gfile.rmtree(stamped)
    io_utils.copy_dir(source, stamped)
    from serving.server.warmup import write_warmup_requests
    write_warmup_requests(stamped, serialized_examples(rows), model_name)
    problems = check_servable(stamped, rows, model_name)
    if problems:
        tf.io.gfile.rmtree(stamped)  # a model that does not serve must not be pushable
        io_utils.write_string_file(os.path.join(blessing.uri, NOT_BLESSED_FILE), "\n".join(problems))
    else:
        io_utils.write_string_file(os.path.join(blessing.uri, BLESSED_FILE), "")
    blessing.set_int_custom_property("blessed", 0 if problems else 1)
    blessing.set_int_custom_property("has_model", 0 if problems else 1)
    blessing.set_string_custom_property(
        REPORT_PROPERTY, "\n".join(problems) if problems else
        f"{len(rows)} evaluation examples answered over gRPC and REST as in-process")
