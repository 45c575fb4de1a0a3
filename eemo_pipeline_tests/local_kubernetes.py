"""A Kubernetes API endpoint on 127.0.0.1 for the tests of the cluster deployment (no cluster can run here).

The real ``kubernetes`` client that dagster-k8s uses talks to it over HTTP through a kubeconfig, so what it
records is the exact JSON a cluster's API server would receive. Jobs (run workers, steps) are recorded only. A Pod's
first container is run here as a local process, with the pod's command, environment and working directory (the
image, volumes and resources are not emulated), and its output is the pod's log, with Kubernetes' timestamps:
``PipesK8sClient`` waits for it, streams its log and reads the Pipes messages from it as it would in a cluster.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

# The oldest Kubernetes release the objects must be valid for (a supported release when this was written).
KUBERNETES_VERSION = "1.33"
_COLLECTION = re.compile(r"^/(?:api/v1|apis/batch/v1)/namespaces/(?P<namespace>[^/]+)/(?P<kind>pods|jobs)$")
_POD = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)(?P<log>/log)?$")


def validate(manifest: dict[str, Any]) -> None:
    """Raises kubernetes_validate.ValidationError naming the field when ``manifest`` is not a valid object of
    ``KUBERNETES_VERSION``'s OpenAPI schema (strict: an unknown field fails too)."""
    import kubernetes_validate

    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _PodProcess:
    """A pod's first container as a local process; its combined output, one timestamped line at a time."""

    def __init__(self, pod: dict[str, Any]) -> None:
        container = pod["spec"]["containers"][0]
        env = dict(os.environ)
        env.update({item["name"]: item.get("value", "") for item in container.get("env", [])})
        self.started = _timestamp()
        self.lines: list[str] = []
        self.done = threading.Event()
        self.process = subprocess.Popen(
            [*container.get("command", []), *container.get("args", [])], env=env, cwd=container.get("workingDir"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(f"{_timestamp()} {line.rstrip(chr(10))}\n")
        self.process.wait()
        self.done.set()

    def status(self, name: str, image: str) -> dict[str, Any]:
        if self.done.is_set():
            state = {"terminated": {"exitCode": self.process.returncode, "startedAt": self.started,
                                    "finishedAt": _timestamp(),
                                    "reason": "Completed" if self.process.returncode == 0 else "Error"}}
            phase = "Succeeded" if self.process.returncode == 0 else "Failed"
        else:
            state, phase = {"running": {"startedAt": self.started}}, "Running"
        return {"phase": phase, "containerStatuses": [{"name": name, "image": image, "imageID": image,
                                                       "ready": not self.done.is_set(), "restartCount": 0,
                                                       "state": state}]}


class LocalKubernetes:
    """Start with ``with LocalKubernetes(tmp_path) as kube``; ``kube.kubeconfig`` points a client at it (its context's
    namespace is ``namespace``) and ``kube.created`` lists every object created, in order, as (namespace, object)."""

    def __init__(self, directory: Path, namespace: str = "eemo") -> None:
        self.created: list[tuple[str, dict[str, Any]]] = []
        self.pods: dict[str, tuple[dict[str, Any], _PodProcess]] = {}
        self.namespace = namespace
        self.kubeconfig = Path(directory) / "kubeconfig.yaml"
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    def __enter__(self) -> LocalKubernetes:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        server = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "local",
            "clusters": [{"name": "local", "cluster": {"server": server}}],
            "users": [{"name": "local", "user": {"token": "local"}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "local",
                                                        "namespace": self.namespace}}],
        }))
        return self

    def __exit__(self, *exc: object) -> None:
        for _, process in self.pods.values():
            if process.process.poll() is None:
                process.process.kill()
        self._server.shutdown()
        self._server.server_close()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [item for _, item in self.created if item["kind"] == kind]

    def _pod_view(self, name: str) -> dict[str, Any]:
        pod, process = self.pods[name]
        container = pod["spec"]["containers"][0]
        return {**pod, "apiVersion": "v1", "kind": "Pod",
                "status": process.status(container["name"], container.get("image", ""))}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        kube = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                match = _COLLECTION.match(urlparse(self.path).path)
                if not match:
                    return self._json(404, {"kind": "Status", "code": 404})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                # The API server takes the type from the collection when the body does not name it (a Pipes pod).
                body = {"apiVersion": "v1" if match["kind"] == "pods" else "batch/v1",
                        "kind": "Pod" if match["kind"] == "pods" else "Job", **body}
                kube.created.append((match["namespace"], body))
                if match["kind"] == "pods":
                    kube.pods[body["metadata"]["name"]] = (body, _PodProcess(body))
                self._json(201, body)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if (match := _COLLECTION.match(url.path)) and match["kind"] == "pods":
                    selector = parse_qs(url.query).get("fieldSelector", [""])[0]
                    names = [name for name in kube.pods if selector in ("", f"metadata.name={name}")]
                    return self._json(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {},
                                            "items": [kube._pod_view(name) for name in names]})
                match = _POD.match(url.path)
                if not match or match["name"] not in kube.pods:
                    return self._json(404, {"kind": "Status", "code": 404})
                if not match["log"]:
                    return self._json(200, kube._pod_view(match["name"]))
                # Followed as a cluster streams it: one chunk per line as it is written, until the process ends.
                process = kube.pods[match["name"]][1]
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                sent = 0
                while True:
                    finished = process.done.is_set()
                    while sent < len(process.lines):
                        data = process.lines[sent].encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        sent += 1
                    self.wfile.flush()
                    if finished:
                        self.wfile.write(b"0\r\n\r\n")
                        self.close_connection = True
                        return
                    time.sleep(0.2)

            def do_DELETE(self) -> None:
                match = _POD.match(urlparse(self.path).path)
                if not match or match["name"] not in kube.pods:
                    return self._json(404, {"kind": "Status", "code": 404})
                self._json(200, kube._pod_view(match["name"]))

        return Handler
