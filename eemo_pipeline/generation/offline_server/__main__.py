"""``python -m eemo_pipeline.generation.offline_server``: serves until SIGTERM or Ctrl-C (see ``server.main``)."""

import sys

from eemo_pipeline.generation.offline_server.server import main

sys.exit(main())
