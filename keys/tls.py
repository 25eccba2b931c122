"""The TLS context for outbound HTTPS (Zalo's API, its media hosts): one per process.

Loading the CA bundle takes about 50 ms, more than the rest of a send job; every client
shares this verifying context instead of building its own.
"""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def client_tls_context() -> ssl.SSLContext:
    """A certificate-verifying client context (httpx's defaults: certifi's CA bundle)."""
    return httpx.create_ssl_context()
