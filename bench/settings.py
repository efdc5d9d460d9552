"""The platform's settings, plus one trivial async view as a measuring floor.

Everything else is exactly the production configuration: the same middleware,
database options, cache and logging, driven by the same environment variables.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
