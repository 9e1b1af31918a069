"""Which signature and input a client call uses unless told otherwise, and which output it returns.

Predict goes to TF Serving's default signature and feeds serialized tf.Examples to its
`examples` input (the name tf.Example parsing signatures conventionally take). TF Serving
has no default names for classify and regress signatures beyond serving_default, so those
calls default to the names SavedModels conventionally give them. Every call takes its own.
"""
from __future__ import annotations

from typing import Iterable

from serving.signature_names import DEFAULT_SIGNATURE

PREDICT_SIGNATURE = DEFAULT_SIGNATURE
CLASSIFY_SIGNATURE, REGRESS_SIGNATURE = "classification", "regression"
EXAMPLES_INPUT = "examples"


def pick_output(names: Iterable[str], output_key: str | None, signature: str) -> str:
    """`output_key`, or the only output when none is given; ValueError when that is ambiguous."""
    names = sorted(names)
    if output_key is None:
        if len(names) == 1:
            return names[0]
        raise ValueError(f"signature {signature} answers {len(names)} outputs ({', '.join(names)}): "
                         "say which with output_key")
    if output_key not in names:
        raise ValueError(f"signature {signature} has no output {output_key}; it has {', '.join(names)}")
    return output_key
