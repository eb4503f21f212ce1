"""The two loopback servers of the Hub tests: [`HubUploadServer`] (uploads) and `olah` (downloads), one mirror tree.

`olah` serves downloads in offline mode with two gaps against the Hub, which `OlahFront` (a loopback proxy in front of
it) closes so that an unmodified client sees Hub answers: `/api/models/<org>/<repo>` (model info) answers 401
unless `/revision/main` is appended, and a path missing from an existing repository answers 401 (the Hub: 404
`EntryNotFound`, which clients treat as "optional file absent"; transformers lists `additional_chat_templates/`).
Everything else is forwarded byte for byte.

`olah` runs from its own virtual environment (it pins other versions of packages this project uses). The README's
test command creates it at `.olah/`; `TINYBERT_HF_OLAH` may name another `olah-cli`. It is not optional: without it
the Hub tests fail with the command that installs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .conftest import free_port
from .hub_upload_server import HubUploadServer

ROOT = Path(__file__).resolve().parent.parent
INSTALL_OLAH = "python3 -m venv .olah && .olah/bin/pip install -c constraints-olah.txt olah"
# the token the upload server accepts; tests assert it never appears in output, logs, cards or uploaded files
TOKEN = "hf_tinybertTESTtoken0123456789abcdefXYZ"


def olah_command() -> str:
    for candidate in (
        os.environ.get("TINYBERT_HF_OLAH"),
        ROOT / ".olah" / "bin" / "olah-cli",
        shutil.which("olah-cli"),
    ):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise FileNotFoundError(f"olah-cli not found; the Hub tests need it: `{INSTALL_OLAH}` (see README).")


class OlahFront(ThreadingHTTPServer):
    """Forwards to olah; turns its offline-mode 401s for an existing repository into the Hub's answers."""

    daemon_threads = True

    def __init__(self, olah_endpoint: str, mirrors: Path):
        super().__init__(("127.0.0.1", 0), _FrontHandler)
        self.olah_endpoint = olah_endpoint
        self.mirrors = mirrors

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> OlahFront:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


_REPOSITORY_PATH = re.compile(r"^/(?:api/models/)?(?P<repo>[^/?]+/[^/?]+)(?P<rest>[/?].*)?$")


class _FrontHandler(BaseHTTPRequestHandler):
    server: OlahFront

    def log_message(self, format, *args):
        pass

    def _forward(self, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))) if self.command == "POST" else None
        headers = {key: value for key, value in self.headers.items() if key.lower() not in ("host", "connection")}
        request = urllib.request.Request(self.server.olah_endpoint + path, data=body, headers=headers,
                                         method=self.command)  # fmt: skip
        try:
            with _NO_REDIRECTS.open(request, timeout=120) as response:
                return response.status, list(response.headers.items()), response.read()
        except urllib.error.HTTPError as error:
            return error.code, list(error.headers.items()), error.read()

    def _handle(self):
        status, headers, body = self._forward(self.path)
        match = _REPOSITORY_PATH.match(self.path)
        if status == 401 and match and (self.server.mirrors / "models" / match["repo"] / ".git").is_dir():
            if self.path.startswith("/api/models/") and not (match["rest"] or "").strip("/"):
                status, headers, body = self._forward(f"/api/models/{match['repo']}/revision/main")
            else:
                body = json.dumps({"error": "Entry not found"}).encode()
                status, headers = 404, [("Content-Type", "application/json"), ("X-Error-Code", "EntryNotFound")]
        self.send_response(status)
        skipped = {"transfer-encoding", "connection", "date", "server"}
        if self.command != "HEAD":  # a HEAD answer keeps the size of the body it describes
            skipped.add("content-length")
            headers = [*headers, ("Content-Length", str(len(body)))]
        for key, value in headers:
            if key.lower() not in skipped:
                self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = _handle


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # the client follows olah's redirects itself, through this proxy
        return None


_NO_REDIRECTS = urllib.request.build_opener(_KeepRedirects)


@dataclass
class HubServers:
    upload: HubUploadServer
    download_endpoint: str  # olah
    mirrors: Path

    @property
    def upload_endpoint(self) -> str:
        return self.upload.endpoint


def start_olah(mirrors: Path, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = workdir / "olah.toml"
    config.write_text(
        "[basic]\n"
        f'host = "127.0.0.1"\nport = {port}\n'
        f'repos-path = "{workdir / "olah-cache"}"\nmirrors-path = ["{mirrors}"]\n'
        "[accessibility]\noffline = true\n"
    )
    log = open(workdir / "olah.log", "wb")  # noqa: SIM115 (kept open for the server's lifetime)
    process = subprocess.Popen([olah_command(), "-c", str(config)], cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"olah exited with {process.returncode}: {(workdir / 'olah.log').read_text()[-2000:]}")
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            return process, endpoint
        except urllib.error.HTTPError:  # any HTTP answer means it is serving
            return process, endpoint
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"olah did not answer on {endpoint} within 60 s")
