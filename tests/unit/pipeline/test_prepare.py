"""A change to models/ changes the cache key of Transform and Trainer."""
import shutil

from pipeline.config import load_config
from pipeline.pipeline import create_pipeline
from pipeline.prepare import MODELS_DIR, models_fingerprint, prepare


def test_fingerprint_follows_the_code(tmp_path):
    copy = tmp_path / "models"
    shutil.copytree(MODELS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    original = models_fingerprint(copy)
    assert original == models_fingerprint(MODELS_DIR)
    with open(copy / "preprocessing.py", "a") as handle:
        handle.write("\n# a one-line change\n")
    assert models_fingerprint(copy) != original


def test_transform_and_trainer_carry_the_fingerprint(tmp_path):
    config = load_config(None, [f"output_root={tmp_path}"])
    components = {c.id: c for c in create_pipeline(config, prepare(config)).components}
    for name in ("Transform", "Trainer"):
        assert f'"models_fingerprint": "{models_fingerprint()}"' in components[name].exec_properties["custom_config"]
