"""The taxi-tip TFX pipeline: pipeline, model code and model server.

Install into the environment made from requirements.lock (see README.md); the pins live
in the lock, so install_requires stays empty on purpose.
"""
from setuptools import find_packages, setup

setup(
    name="taxi-tip-pipeline",
    version="0.1.0",
    description="Production TFX pipeline that predicts big tips on Chicago taxi trips",
    python_requires=">=3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "models", "models.*", "serving", "serving.*",
                                    "data"]),
    py_modules=["tf_environment"],
    entry_points={"console_scripts": ["taxi-pipeline=pipeline.cli.main:main"]},
)
