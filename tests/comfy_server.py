"""A real ComfyUI server for tier-2 tests, on a throwaway base directory.

COMFYUI_PATH names a ComfyUI checkout; COMFYUI_PYTHON the interpreter that has its
requirements (default: this one). The pack is linked into the base directory's
custom_nodes, models and input images are written there, and graphs are sent over HTTP
as ComfyUI's own frontend does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
SKIP_REASON = "tier 2: set COMFYUI_PATH to a ComfyUI checkout (and COMFYUI_PYTHON to its interpreter) to run"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = base / "server.log"
        (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
        link = base / "custom_nodes" / "ComfyUI-FaceX"
        if not link.exists():
            link.symlink_to(REPO, target_is_directory=True)
        for folder in ("input", "output", "models"):
            (base / folder).mkdir(exist_ok=True)
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 300.0) -> ComfyServer:
        python = os.environ.get("COMFYUI_PYTHON", sys.executable)
        command = [python, "main.py", "--cpu", "--base-directory", str(self.base), "--listen", "127.0.0.1",
                   "--port", str(self.port), "--disable-auto-launch"]
        log = open(self.log, "w")  # noqa: SIM115 - the server writes to it until it stops
        self.process = subprocess.Popen(command, cwd=COMFYUI_PATH, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                self.get("/object_info/FaceXDoctor")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1.0)
        raise RuntimeError(f"ComfyUI did not start in {timeout:.0f} s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, payload: dict) -> dict:
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return {"http_error": error.code, **json.loads(error.read() or b"{}")}

    def run(self, prompt: dict, timeout: float = 600.0) -> dict:
        """Queue an API-format graph and wait for its history entry (status and outputs)."""
        queued = self.post("/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})
        if "prompt_id" not in queued:
            return {"rejected": queued}
        deadline = time.time() + timeout
        while time.time() < deadline:
            history = self.get(f"/history/{queued['prompt_id']}")
            status = history.get(queued["prompt_id"], {}).get("status", {})
            if status.get("completed") is not None:
                entry = history[queued["prompt_id"]]
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            time.sleep(0.5)
        raise TimeoutError(f"graph did not finish in {timeout:.0f} s:\n{self.log.read_text()[-4000:]}")


def execution_error(entry: dict) -> str:
    """The exception message ComfyUI recorded for a failed run ('' when it succeeded)."""
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return f"{data.get('exception_type')}: {data.get('exception_message')}"
    return ""
