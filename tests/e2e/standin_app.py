#!/usr/bin/env python3
"""A stand-in for ``llmops serve`` in the e2e image: the container runs
``llmops serve <app> --bundle <file> --host <host> --port <port>`` (``llmops.deploy.k8s``);
this answers 200 on ``/healthz`` and ``/readyz`` and describes itself elsewhere, so a real
cluster's readiness probes, Services and rollouts work without building a release image.
Standard library only (the image is ``python:3.11-alpine`` plus this file)."""

from __future__ import annotations

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser(prog="llmops")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("app")
    parser.add_argument("--bundle", default="")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    about = json.dumps(
        {"app": args.app, "environment": os.environ.get("LLMOPS_ENVIRONMENT"), "standin": True}
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"ok\n" if self.path in ("/healthz", "/readyz") else about
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *items: object) -> None:
            pass

    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
