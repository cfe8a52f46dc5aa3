"""Render a page in headless Chromium and report what a user would see: console errors, images, a screenshot.

Talks the Chrome DevTools Protocol over ``--remote-debugging-pipe`` (JSON messages separated by NUL bytes on file
descriptors 3 and 4), so it needs nothing beyond the Debian ``chromium`` package and the standard library (and
Pillow, which matplotlib already installs, to read the screenshot). ``check_page`` skips the calling test with a
printed reason when no Chromium is installed.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


@dataclass
class PageCheck:
    """What the browser saw: console errors and exceptions, images and how many loaded, screenshot colours."""

    console_errors: list[str] = field(default_factory=list)
    images: int = 0
    images_loaded: int = 0
    distinct_colours: int = 0
    probed: Any = None  # the value of check_page's ``probe`` expression, when one was given


def find_browser() -> str | None:
    """The first Chromium-family executable on PATH (``ROBUSTFT_CHROMIUM`` overrides)."""
    wanted = os.environ.get("ROBUSTFT_CHROMIUM")
    if wanted:
        return wanted
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


class _Pipe:
    def __init__(self, browser: str, profile: str) -> None:
        commands_r, self._write = os.pipe()
        self._read, replies_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies and events on fd 4. Both ends are first moved above
        # fd 10, so that placing one on 3 or 4 in the child cannot overwrite the other.
        high_r = fcntl.fcntl(commands_r, fcntl.F_DUPFD_CLOEXEC, 10)
        high_w = fcntl.fcntl(replies_w, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (commands_r, replies_w):
            os.close(fd)
        self.process = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            # dup2 clears close-on-exec, so fds 3 and 4 reach Chromium; close_fds would close them again.
            close_fds=False, preexec_fn=lambda: (os.dup2(high_r, 3), os.dup2(high_w, 4)))
        os.close(high_r)
        os.close(high_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._next(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(f"no reply to {method} within {timeout} s")

    def _next(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("the browser stopped answering")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError("the browser exited")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return
        while time.monotonic() < deadline:
            event = self._next(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return
        raise TimeoutError(f"no {method} within {timeout} s")

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._write)
        os.close(self._read)


def check_page(page: Path, screenshot: Path, width: int = 1280, height: int = 2000, probe: str | None = None,
               clip: str | None = None) -> PageCheck:
    """Loads ``page`` (a local HTML file) in headless Chromium and returns what it saw; saves a PNG screenshot.

    Args:
        probe: a JavaScript expression evaluated in the loaded page; its JSON-serialisable value is returned as
            ``PageCheck.probed`` (what the rendered DOM holds: sizes, visibility, text).
        clip: a CSS selector: the screenshot is of the rendered area from the first element it matches to the end of
            the page (beyond the viewport), instead of the viewport.
    """
    browser = find_browser()
    if browser is None:
        message = ("no Chromium found: install the Debian package `chromium` (make test does where apt is "
                   "available) or set ROBUSTFT_CHROMIUM")
        print(f"SKIPPED: {message}")
        pytest.skip(message)
    from PIL import Image

    with tempfile.TemporaryDirectory() as profile:
        pipe = _Pipe(browser, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.send(f"{domain}.enable", session=session)
            pipe.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                             "deviceScaleFactor": 1, "mobile": False}, session)
            pipe.events.clear()
            pipe.send("Page.navigate", {"url": page.resolve().as_uri()}, session)
            pipe.wait_for("Page.loadEventFired", timeout=60)
            images = pipe.send("Runtime.evaluate", {"expression": (
                "JSON.stringify([document.images.length, Array.from(document.images).filter("
                "i => i.complete && i.naturalWidth > 0).length])"), "returnByValue": True}, session)
            total, loaded = json.loads(images["result"]["value"])
            probed = _evaluate(pipe, session, probe) if probe else None
            shot = pipe.send("Page.captureScreenshot", {"format": "png", **_clip(pipe, session, clip)}, session,
                             timeout=60)
        finally:
            pipe.close()
    data = base64.b64decode(shot["data"])
    screenshot.write_bytes(data)
    colours = Image.open(io.BytesIO(data)).convert("RGB").getcolors(maxcolors=1 << 20) or []
    return PageCheck(console_errors=_errors(pipe.events), images=int(total), images_loaded=int(loaded),
                     distinct_colours=len(colours), probed=probed)


def _evaluate(pipe: _Pipe, session: str, expression: str) -> Any:
    reply = pipe.send("Runtime.evaluate", {"expression": f"JSON.stringify({expression})", "returnByValue": True},
                      session)
    if "exceptionDetails" in reply:
        raise RuntimeError(f"probe failed: {reply['exceptionDetails'].get('exception', {}).get('description')}")
    return json.loads(reply["result"]["value"])


def _clip(pipe: _Pipe, session: str, selector: str | None) -> dict[str, Any]:
    """``Page.captureScreenshot``'s parameters for the page from ``selector``'s element down (none: the viewport)."""
    if not selector:
        return {}
    box = _evaluate(pipe, session, (
        "(() => { const e = document.querySelector(" + json.dumps(selector) + "); if (!e) return null; "
        "const r = e.getBoundingClientRect(); return [r.left + scrollX, r.top + scrollY, "
        "document.documentElement.scrollWidth, document.documentElement.scrollHeight]; })()"))
    if box is None:
        raise RuntimeError(f"nothing on the page matches {selector!r} to clip the screenshot to")
    top = box[1]
    return {"captureBeyondViewport": True,
            "clip": {"x": 0, "y": top, "width": box[2], "height": max(1.0, box[3] - top), "scale": 1}}


def _errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        params = event.get("params", {})
        if event.get("method") == "Runtime.exceptionThrown":
            errors.append(str(params.get("exceptionDetails", {}).get("text")))
        elif event.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif event.get("method") == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(str(params["entry"].get("text")))
    return errors
