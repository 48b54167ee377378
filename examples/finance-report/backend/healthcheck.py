"""Container healthcheck: slim images have no curl."""

import os
import sys
import urllib.request

try:
    with urllib.request.urlopen(f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/api/health", timeout=2):
        sys.exit(0)
except Exception:
    sys.exit(1)
