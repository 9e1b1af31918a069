"""After the push: what ran, where a model came from, going back, documenting and using a version.

- runs.py: every run with its outcome and duration (`taxi-pipeline runs`);
- provenance.py: what each run ran with (commit, lock, versions, data hashes), on its MLMD context;
- compare.py: two runs side by side (`compare`);
- reproduce.py: a pushed version trained again from its record, metrics checked (`reproduce`);
- lineage.py: a pushed version back to its spans through ML Metadata (`lineage`);
- rollback.py: serve an earlier version again as a new version, recorded in ML Metadata (`rollback`);
- model_card.py: the model card and evaluation report of a pushed version (`card`);
- batch_predict.py: score CSV files with a pushed version in a Beam job (`predict`).
"""
