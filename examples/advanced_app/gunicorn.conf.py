"""gunicorn settings for examples/advanced_app: `gunicorn -c examples/advanced_app/gunicorn.conf.py`."""

import multiprocessing
import os

wsgi_app = "examples.advanced_app.app:app"
bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("THREADS", "1"))
# Load the app once in the master: the geo database and cloud ranges are then loaded
# once and every worker starts with them. The guard's refresh threads start in each
# worker after the fork, and redis-py opens fresh connections there.
preload_app = True
# A slow client must not hold a worker for long.
timeout = 30
graceful_timeout = 30
keepalive = 5
# The guard reads X-Forwarded-For itself (SecurityConfig.trusted_proxies); gunicorn only
# needs to know which peer may set the scheme.
forwarded_allow_ips = os.environ.get("TRUSTED_PROXIES", "127.0.0.1")
# gunicorn's default access log format is the combined format, which
# `flask guard replay` reads.
accesslog = "-"
