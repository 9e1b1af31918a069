"""Run TFX's own taxi example (taxi_pipeline_native_keras, as shipped in the tfx package).

Used by pipeline_benchmark.py as the reference: same machine, same run, same train and
eval steps. Prints one progress line per component, like the project's own runner.
"""
from __future__ import annotations

import argparse
import logging
import pathlib
import sys
import time

from absl import logging as absl_logging  # noqa: E402
from tfx.examples.chicago_taxi_pipeline import taxi_pipeline_native_keras as reference  # noqa: E402
from tfx.orchestration.local.local_dag_runner import LocalDagRunner  # noqa: E402

import tf_environment  # noqa: F401,E402  (before anything imports TensorFlow)
from pipeline.runners.progress import ComponentProgress  # noqa: E402

EXAMPLE_DIR = pathlib.Path(reference.__file__).parent
# The example's own Beam settings: multi-processing, one worker per core.
SHIPPED_BEAM_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
IN_MEMORY_BEAM_ARGS = ["--direct_running_mode=in_memory"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True, help="empty folder for the example's outputs")
    parser.add_argument("--in-memory", action="store_true",
                        help="Beam's in-memory DirectRunner instead of the example's multi-processing one (its "
                             "fastest mode here, the same runner this project uses by default)")
    args = parser.parse_args()
    home = pathlib.Path(args.home)
    tfx_pipeline = reference._create_pipeline(  # the example's own factory, unchanged
        pipeline_name="chicago_taxi_native_keras",
        pipeline_root=str(home / "pipeline"),
        data_root=str(EXAMPLE_DIR / "data" / "simple"),
        module_file=str(EXAMPLE_DIR / "taxi_utils_native_keras.py"),
        serving_model_dir=str(home / "serving"),
        metadata_path=str(home / "metadata.db"),
        beam_pipeline_args=IN_MEMORY_BEAM_ARGS if args.in_memory else SHIPPED_BEAM_ARGS)
    progress = ComponentProgress(total=len(tfx_pipeline.components))
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logging.get_absl_handler().setLevel(logging.ERROR)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.ERROR)
    logging.getLogger().addHandler(progress)
    started = time.monotonic()
    LocalDagRunner().run(tfx_pipeline)
    print(f"reference finished in {time.monotonic() - started:.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
