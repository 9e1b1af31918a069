"""The tuner's search space: every value it can choose builds a model."""
import dataclasses

from models.model import Hyperparameters, build_model
from models.tuning import search_space


def test_every_searched_name_is_a_hyperparameter_of_the_model():
    space = search_space()
    fields = {field.name for field in dataclasses.fields(Hyperparameters)}
    assert {hp.name for hp in space.space} <= fields
    # The knobs that moved the card slice are searched, not only the layout.
    assert {"learning_rate", "embedding_dim", "dropout", "payment_heads"} <= {hp.name for hp in space.space}


def test_the_extremes_of_the_space_build():
    for pick in (0, -1):
        values = {}
        for hp in search_space().space:
            choices = getattr(hp, "values", None) or [True, False]
            values[hp.name] = choices[pick]
        model = build_model(Hyperparameters.from_dict(values))
        assert model.output.shape[-1] == 1
