"""Start the real ComfyUI server (CPU, loopback, free port, temp base directory) with this pack in
its custom_nodes and the test-only pack alongside, and talk to it over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from urllib import error, request

from tests.support.comfy_kit import kit_env

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEST_NODES = os.path.join(ROOT, "tests", "comfy_custom_nodes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, comfy_path: str, base_dir: str, extra_args=()):
        self.comfy_path = comfy_path
        self.base = base_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.join(base_dir, "server.log")

    def prepare(self):
        for d in ("custom_nodes", "input", "output", "temp", "user", "models/seg2any", "models/diffusion_models"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        link = os.path.join(self.base, "custom_nodes", "seg2any-nodes")
        if not os.path.exists(link):
            os.symlink(ROOT, link)
        with open(os.path.join(self.base, "extra_model_paths.yaml"), "w") as f:
            f.write(f"seg2any_tests:\n  custom_nodes: {TEST_NODES}\n")

    def start(self, timeout=240):
        self.prepare()
        cmd = [
            sys.executable,
            os.path.join(self.comfy_path, "main.py"),
            "--cpu",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--base-directory",
            self.base,
            "--extra-model-paths-config",
            os.path.join(self.base, "extra_model_paths.yaml"),
            "--disable-auto-launch",
            "--use-pytorch-cross-attention",
            "--database-url",
            "sqlite:///:memory:",
            *self.extra_args,
        ]
        env = dict(os.environ)
        env.pop("PYTEST_CURRENT_TEST", None)
        env["PYTHONUNBUFFERED"] = "1"
        env = kit_env(self.comfy_path, env)  # the frontend packages this snapshot pins, if unpacked
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.comfy_path, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited early (code {self.proc.returncode}):\n{self.tail()}")
            try:
                self.get("/system_stats")
                return self
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not start in {timeout}s:\n{self.tail()}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "log", None):
            self.log.close()

    def tail(self, n=80) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    # -- HTTP ------------------------------------------------------------------------------
    def get(self, path):
        with request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read().decode())

    def post(self, path, payload):
        req = request.Request(self.url + path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
        try:
            with request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read().decode())
        except error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "{}")

    def object_info(self) -> dict:
        return self.get("/object_info")

    def run(self, prompt: dict, timeout=900) -> dict:
        """Submit a prompt and wait for its history entry. Returns {'status', 'outputs', 'errors'}."""
        status, body = self.post("/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})
        if status != 200:
            return {"status": "rejected", "errors": body, "outputs": {}}
        pid = body["prompt_id"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{pid}")
            if pid in hist:
                entry = hist[pid]
                st = entry.get("status", {})
                msgs = st.get("messages", [])
                errors = [m[1] for m in msgs if m[0] == "execution_error"]
                return {"status": st.get("status_str", "?"), "outputs": entry.get("outputs", {}), "errors": errors}
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running a prompt:\n{self.tail()}")
            time.sleep(0.5)
        raise TimeoutError(f"prompt {pid} did not finish in {timeout}s:\n{self.tail()}")

    def output_path(self, image: dict) -> str:
        return os.path.join(self.base, image.get("type", "output"), image.get("subfolder", ""), image["filename"])


def clean(base_dir: str):
    shutil.rmtree(base_dir, ignore_errors=True)
