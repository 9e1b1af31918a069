"""taxi-pipeline, the command line: one module per group of subcommands.

- main.py: the parser, the shared --config/--set options and the dispatch;
- pipeline_commands.py: run (local or Airflow), compile (Kubeflow);
- data_commands.py: generate (synthetic spans), schema-diff;
- governance_commands.py: runs, lineage, rollback, card, predict;
- reproduce_commands.py: compare (two runs side by side), reproduce (a pushed version);
- monitor_commands.py: monitor, replay;
- release_commands.py: release.

Each group's `add_commands` registers its subparsers with a handler
`handler(args, config) -> exit status`; modules a command needs are imported in its
handler, so one command does not pay for another's imports.
"""
