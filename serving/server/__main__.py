"""`python -m serving.server --model_name=... --model_base_path=... --port=... --rest_api_port=...`"""
import sys

from serving.server.model_server import main

sys.exit(main())
