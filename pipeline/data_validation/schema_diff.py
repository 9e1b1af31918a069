"""The difference between the curated schema and one inferred from data, for review.

SchemaGen infers a schema from each run's statistics; a person decides whether a
difference is a data problem or a change to accept into schema/schema.pbtxt. Only the
differences that matter for that decision are listed: features added or gone, types,
required vs optional, and values outside or missing from a curated string domain.
"""
from __future__ import annotations

from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

TYPE_NAMES = {schema_pb2.INT: "INT", schema_pb2.FLOAT: "FLOAT", schema_pb2.BYTES: "BYTES",
              schema_pb2.STRUCT: "STRUCT", schema_pb2.TYPE_UNKNOWN: "unknown"}


def _string_values(schema: schema_pb2.Schema, feature: schema_pb2.Feature) -> set[str] | None:
    if feature.HasField("string_domain"):
        return set(feature.string_domain.value)
    if feature.HasField("domain"):
        domain = next((d for d in schema.string_domain if d.name == feature.domain), None)
        return set(domain.value) if domain else None
    return None


def _required(feature: schema_pb2.Feature) -> bool:
    return feature.presence.min_fraction >= 1.0


def diff(curated: schema_pb2.Schema, inferred: schema_pb2.Schema,
         valueless: frozenset[str] = frozenset()) -> list[str]:
    """One line per difference; empty when the data fits the curated schema's shape.

    `valueless` names columns without a single value in the data: the type TFDV infers
    for those is a guess, not a difference.
    """
    lines = []
    ours = {f.name: f for f in curated.feature}
    theirs = {f.name: f for f in inferred.feature}
    for name in sorted(set(theirs) - set(ours)):
        lines.append(f"'{name}': in the data ({TYPE_NAMES[theirs[name].type]}) but not in the curated schema")
    for name in sorted(set(ours) - set(theirs)):
        lines.append(f"'{name}': in the curated schema but not in the data (no values at all)")
    for name in sorted(set(ours) & set(theirs)):
        mine, seen = ours[name], theirs[name]
        if mine.type != seen.type and name not in valueless:
            lines.append(f"'{name}': type {TYPE_NAMES[mine.type]} in the curated schema, "
                         f"{TYPE_NAMES[seen.type]} inferred from the data")
        if _required(mine) and not _required(seen):
            lines.append(f"'{name}': required in the curated schema, but some rows lack it")
        allowed, found = _string_values(curated, mine), _string_values(inferred, seen)
        if allowed is not None and found is not None:
            if found - allowed:
                lines.append(f"'{name}': values outside the curated domain: {', '.join(sorted(found - allowed))}")
            if allowed - found:
                lines.append(f"'{name}': domain values not seen in this data: {', '.join(sorted(allowed - found))}")
    return lines


def diff_span(data_root: str, span: int, curated: schema_pb2.Schema) -> list[str]:
    """The difference between the curated schema and one inferred from span `span`'s CSV files."""
    import tensorflow_data_validation as tfdv

    from pipeline.data_validation.statistics_io import csv_statistics
    from pipeline.ingest.csv_rules import check_spans
    from pipeline.ingest.spans import span_files

    check_spans(data_root, [span], curated, against_schema=False)
    # No schema for the statistics: the column types are the ones the data itself shows.
    statistics = csv_statistics(span_files(data_root, span))
    valueless = frozenset(".".join(f.path.step) for f in statistics.features
                          if not f.num_stats.common_stats.tot_num_values
                          and not f.string_stats.common_stats.tot_num_values)
    inferred = tfdv.infer_schema(statistics_pb2.DatasetFeatureStatisticsList(datasets=[statistics]))
    return diff(curated, inferred, valueless)
