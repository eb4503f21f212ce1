"""A small Hub upload server on loopback: the routes `huggingface_hub` uses to create a repository and commit files.

The real client (`HfApi.create_repo`, `upload_folder`, `create_commit`, Trainer's `push_to_hub`) talks to it over
HTTP exactly as it talks to huggingface.co. Each repository is a plain git repository under
`<mirrors>/models/<org>/<name>` (one git commit per Hub commit), the layout `olah` serves downloads from, so a test
can push here and load back through `olah`.

Routes (what the Hub answers, reduced to what the client reads):

- `POST /api/repos/create` `{"name", "organization", "type", "private"}` -> `{"url", "name"}`, 409 if it exists
- `POST /api/models/<org>/<name>/preupload/<revision>` `{"files": [{"path", "sample", "size"}]}` -> every file
  `"regular"` (sent inline in the commit; no LFS/Xet storage here)
- `POST /api/models/<org>/<name>/commit/<revision>` NDJSON `header` / `file` (base64) / `deletedFile` lines ->
  `{"commitOid", "commitUrl"}`
- `POST /api/validate-yaml` `{"content", "repoType"}` (the client sends every README.md it commits) -> 200, or 400
  with `{"errors": [...]}` when the metadata is not a YAML mapping or `huggingface_hub`'s own `ModelCardData` /
  `model_index_to_eval_results` reject it (the Hub's schema check is stricter; this is the part checkable offline)
- `GET /api/whoami-v2` -> the user the token belongs to

Every route except whoami requires `Authorization: Bearer <token>` with the server's token (401 otherwise).
`fail_commits = True` makes commits answer 500 after reading the whole payload: an error mid-commit.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

USER = "tinybert-tester"
_REPO_ROUTE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<action>preupload|commit)/(?P<revision>[^/?]+)")
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "hub",
    "GIT_AUTHOR_EMAIL": "hub@localhost",
    "GIT_COMMITTER_NAME": "hub",
    "GIT_COMMITTER_EMAIL": "hub@localhost",
    "PATH": "/usr/bin:/bin:/usr/local/bin",
}


def metadata_errors(readme: str) -> list[str]:
    """What is wrong with a README's YAML metadata, checked with huggingface_hub's own parsers ([] if fine)."""
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard_data import model_index_to_eval_results

    match = re.match(r"^---\n(.*?)\n---\n", readme, flags=re.S)
    if match is None:
        return ["README.md has no YAML metadata block"]
    try:
        metadata = yaml.safe_load(match.group(1))
        if not isinstance(metadata, dict):
            return ["The metadata is not a YAML mapping"]
        ModelCardData(**metadata)
        if "model-index" in metadata:
            model_index_to_eval_results(metadata["model-index"])
    except Exception as error:  # the client shows the message to the user
        return [f"Invalid metadata: {type(error).__name__}: {error}"]
    return []


def _git(repository: Path, *arguments: str) -> str:
    completed = subprocess.run(
        ["git", *arguments], cwd=repository, env=_GIT_ENV, capture_output=True, text=True, check=True
    )
    return completed.stdout.strip()


class HubUploadServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` holding the repositories, the accepted token and a log of `(method, path)` requests."""

    daemon_threads = True

    def __init__(self, mirrors: Path, token: str, port: int = 0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.mirrors = Path(mirrors)
        self.token = token
        self.fail_commits = False
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[str] = []  # every Authorization header received (the token must only go here)
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def repository(self, repo_id: str) -> Path:
        return self.mirrors / "models" / repo_id

    def start(self) -> HubUploadServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: HubUploadServer

    def log_message(self, format, *args):  # keep the test output clean
        pass

    # ---- plumbing ----

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("X-Error-Message", body.get("error", ""))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        self.server.authorizations.append(header)
        if header != f"Bearer {self.server.token}":
            self._reply(401, {"error": "Invalid credentials in Authorization header"})
            return False
        return True

    # ---- routes ----

    def do_GET(self):
        self.server.requests.append(("GET", self.path))
        if self.path.startswith("/api/whoami-v2"):
            if self._authorized():
                self._reply(200, {"type": "user", "name": USER, "orgs": [], "auth": {"type": "access_token"}})
            return
        self._reply(404, {"error": f"Route {self.path} not served by the test upload server"})

    def do_POST(self):
        self.server.requests.append(("POST", self.path))
        body = self._body()
        if not self._authorized():
            return
        if self.path.startswith("/api/repos/create"):
            return self._create(json.loads(body))
        if self.path.startswith("/api/validate-yaml"):
            errors = metadata_errors(json.loads(body)["content"])
            return self._reply(400 if errors else 200, {"errors": [{"message": error} for error in errors]})
        route = _REPO_ROUTE.match(self.path)
        if route is None:
            return self._reply(404, {"error": f"Route {self.path} not served by the test upload server"})
        repository = self.server.repository(route["repo"])
        if not (repository / ".git").is_dir():
            return self._reply(404, {"error": "Repository not found"})
        if route["revision"] != "main":
            return self._reply(400, {"error": "Only the main branch is served"})
        if route["action"] == "preupload":
            files = json.loads(body)["files"]
            return self._reply(
                200,
                {"files": [{"path": file["path"], "uploadMode": "regular", "shouldIgnore": False} for file in files]},
            )
        if self.server.fail_commits:
            return self._reply(500, {"error": "Internal Error - the commit could not be written"})
        return self._commit(route["repo"], repository, body)

    def _create(self, request: dict) -> None:
        if request.get("type", "model") != "model":
            return self._reply(400, {"error": "Only model repositories are served"})
        repo_id = f"{request.get('organization') or USER}/{request['name']}"
        repository = self.server.repository(repo_id)
        with self.server._lock:
            if repository.exists():
                return self._reply(409, {"error": "You already created this model repo", "url": self._url(repo_id)})
            repository.mkdir(parents=True)
            _git(repository, "init", "-q", "-b", "main")
            # the Hub starts every repository with a .gitattributes commit
            (repository / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
            _git(repository, "add", ".gitattributes")
            _git(repository, "commit", "-q", "-m", "initial commit")
        self._reply(200, {"url": self._url(repo_id), "name": repo_id, "id": repo_id})

    def _commit(self, repo_id: str, repository: Path, body: bytes) -> None:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        with self.server._lock:
            for line in lines:
                value = line["value"]
                if line["key"] == "file":
                    path = repository / value["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    content = value["content"]
                    path.write_bytes(
                        base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                    )
                elif line["key"] == "deletedFile":
                    (repository / value["path"]).unlink(missing_ok=True)
                elif line["key"] != "header":
                    return self._reply(400, {"error": f"Operation {line['key']!r} not served by the test server"})
            _git(repository, "add", "-A")
            _git(repository, "commit", "-q", "--allow-empty", "-m", header["summary"])
            oid = _git(repository, "rev-parse", "HEAD")
        self._reply(200, {"commitOid": oid, "commitUrl": f"{self._url(repo_id)}/commit/{oid}"})

    def _url(self, repo_id: str) -> str:
        return f"{self.server.endpoint}/{repo_id}"
