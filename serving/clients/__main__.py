"""`python -m serving.clients CSV --grpc HOST:PORT | --rest URL [...]` (see serving/clients/cli.py)."""
import sys

from serving.clients.cli import main

sys.exit(main())
