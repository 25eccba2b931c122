"""Request throttling (Flask-Limiter, stored in Redis so every web worker shares the counts)."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address, default_limits=[])
