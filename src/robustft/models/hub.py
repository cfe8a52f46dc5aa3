"""Is the model hub reachable? Decided in about a second, so an offline machine gets a clear error, not a hang.

huggingface_hub retries an unreachable host for ~50 s before failing, and a blocked connection can hang for
minutes. So before any download we open one TCP connection to the host (or to the configured proxy) with a
short timeout. When it fails we run the library in its offline mode, which still serves files already in the
local cache, and turn a cache miss into ``OfflineError`` naming the two ways out: internet or
``pretrained_file=``. ``HF_HUB_OFFLINE=1`` (or ``TRANSFORMERS_OFFLINE=1``) skips the probe.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterator

PROBE_TIMEOUT_SECONDS = 2.0
HF_ENDPOINT_DEFAULT = "https://huggingface.co"


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def offline_forced() -> bool:
    """True when the user set HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE."""
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


@functools.lru_cache(maxsize=16)
def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def reachable(url: str) -> bool:
    """True when a TCP connection to ``url``'s host (or the https proxy in use) opens within the timeout.

    The answer is cached for the process: one slow probe per host at most.
    """
    proxy = urllib.request.getproxies().get(urllib.parse.urlsplit(url).scheme or "https")
    if proxy and not urllib.request.proxy_bypass(urllib.parse.urlsplit(url).hostname or ""):
        url = proxy if "://" in proxy else f"http://{proxy}"
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return _can_connect(parts.hostname, port)


def hf_hub_reachable() -> bool:
    """Whether the Hugging Face hub (``HF_ENDPOINT``) can be reached now; False when offline mode is forced."""
    if offline_forced():
        return False
    return reachable(os.environ.get("HF_ENDPOINT", HF_ENDPOINT_DEFAULT))


@contextlib.contextmanager
def hf_offline_mode(enabled: bool = True) -> Iterator[None]:
    """Runs the block with huggingface_hub in offline mode (cache only, no network, no retries)."""
    try:
        import huggingface_hub.constants as hub_constants
    except ImportError:  # no hub library: nothing to switch
        yield
        return
    previous = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = previous or enabled
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = previous


def looks_like_network_error(error: BaseException) -> bool:
    """True for the exception types hub/url downloads raise when the network or the cache cannot serve a file."""
    names = {type(e).__name__ for e in _chain(error)}
    network_names = {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "URLError", "ConnectionError",
                     "ConnectTimeout", "ReadTimeout", "ConnectError", "TimeoutError", "gaierror", "HTTPError",
                     "MaxRetryError", "NameResolutionError", "socket.timeout"}
    return bool(names & network_names) or "offline" in str(error).lower()


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
