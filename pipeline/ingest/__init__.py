"""Getting the spans in: which span folders a run reads, the CSV check, and the ExampleGen executor.

- spans.py: span-<N>/ folders, the `spans` setting (all, latest, window:N, a number), window folders;
- csv_check.py: the CsvCheck component (stops a run on a broken CSV file, naming file, line and column);
- csv_rules.py: the checks CsvCheck runs, against the curated schema's columns and types;
- fast_csv_example_gen.py: the Arrow executor behind the CsvExampleGen node (same examples as TFX's, less CPU).
"""
