"""tuner_fn for TFX Tuner: a KerasTuner random search over models/model.py's hyperparameters.

The model trains with its own loop (see models.model.train), not Keras' fit(), so the
search overrides run_trial: each trial builds the model from the trial's values, trains
it for Tuner's train steps and reports the evaluation AUC, the metric the blessing uses.
"""
from __future__ import annotations

import keras_tuner
import tensorflow_transform as tft
from tfx.components.tuner.component import TunerFnResult

from models import model as model_code
from models import seeding

OBJECTIVE = "eval_auc"
# Tuner's custom_config key for the number of trials.
MAX_TRIALS_KEY = "max_trials"


def search_space() -> keras_tuner.HyperParameters:
    """What the search may choose; names are models.model.Hyperparameters fields."""
    space = keras_tuner.HyperParameters()
    # What moved the card slice's AUC on the shipped data: the step size and how hard the
    # many cross embeddings are held back from memorising the 3,000 card trips (the cap on
    # their size, dropout); the layout mattered less.
    space.Choice("learning_rate", [0.001, 0.002, 0.005])
    space.Choice("embedding_dim", [4, 8, 16])
    space.Choice("dropout", [0.0, 0.1, 0.3])
    # A string per layout: KerasTuner choices are scalars; Hyperparameters.from_dict splits it.
    space.Choice("hidden_units", ["64,32", "128,64", "32"])
    space.Boolean("payment_heads", default=True)
    return space


class TaxiSearch(keras_tuner.RandomSearch):
    """Random search whose trials train with the project's training loop."""

    def __init__(self, transform_output: tft.TFTransformOutput, train_files: list[str], eval_files: list[str],
                 train_steps: int, eval_steps: int, **kwargs):
        super().__init__(**kwargs)
        self.transform_output, self.train_files, self.eval_files = transform_output, train_files, eval_files
        self.train_steps, self.eval_steps = train_steps, eval_steps

    def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
        hparams = model_code.Hyperparameters.from_dict(trial.hyperparameters.values)
        model = model_code.build_model(hparams)
        result = model_code.train(
            model, model_code.dataset(self.train_files, self.transform_output, hparams.batch_size),
            model_code.dataset(self.eval_files, self.transform_output, hparams.batch_size),
            self.train_steps, self.eval_steps)
        return {OBJECTIVE: result[OBJECTIVE]}


def tuner_fn(fn_args) -> TunerFnResult:
    """Entry point for TFX Tuner."""
    seeding.seed_everything()  # the trials' weights; KerasTuner's own choices take seed= below
    tuner = TaxiSearch(
        transform_output=tft.TFTransformOutput(fn_args.transform_graph_path),
        train_files=fn_args.train_files, eval_files=fn_args.eval_files,
        train_steps=fn_args.train_steps, eval_steps=fn_args.eval_steps,
        hyperparameters=search_space(),
        objective=keras_tuner.Objective(OBJECTIVE, "max"),
        max_trials=int((fn_args.custom_config or {}).get(MAX_TRIALS_KEY, 4)),
        directory=fn_args.working_dir, project_name="taxi_tips_search", overwrite=True, seed=0)
    return TunerFnResult(tuner=tuner, fit_kwargs={})
