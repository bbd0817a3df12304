"""A small OpenAI-compatible completions server around the HF backend.

For tests, demos and teacher models on a machine without vLLM:

    selftaught serve --model data/runs/demo/models/base/model --port 8000
    (or python -m synth.serve ...)

It implements POST /v1/completions (prompt: str or list, n, temperature,
top_p, max_tokens, stop, seed) and GET /v1/models. Requests are served one at
a time (the model is not thread-safe). `--api-key` makes it check the bearer
token; `--fail-first N` answers the first N completion requests with 429 or
503, so clients' retry paths can be exercised against a real server.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from synth.backends import HFBackend, SamplingParams


class State:
    def __init__(self, backend: HFBackend, model_name: str, api_key: str | None, fail_first: int, delay: float):
        self.backend, self.model_name, self.api_key = backend, model_name, api_key
        self.fail_left, self.delay = fail_first, delay
        self.lock = threading.Lock()
        self.requests = 0


def make_handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # one line per request on stderr is noise in test logs
            pass

        def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str, headers: dict | None = None) -> None:
            self._send(
                status, {"error": {"message": message, "type": "invalid_request_error", "code": status}}, headers
            )

        def _authorized(self) -> bool:
            if state.api_key is None or self.headers.get("Authorization") == f"Bearer {state.api_key}":
                return True
            self._error(401, "invalid or missing API key")
            return False

        def do_GET(self):
            if not self._authorized():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": state.model_name, "object": "model"}]})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not self._authorized():
                return
            if self.path.rstrip("/") != "/v1/completions":
                return self._error(404, f"no route {self.path}")
            with state.lock:
                state.requests += 1
                if state.fail_left > 0:
                    state.fail_left -= 1
                    status = 429 if state.fail_left % 2 == 0 else 503
                    return self._error(status, "injected failure (--fail-first)", {"Retry-After": "0"})
            try:
                req = json.loads(raw)
                params = _params(req)
                prompts = req["prompt"] if isinstance(req["prompt"], list) else [req["prompt"]]
                if req.get("model") != state.model_name:
                    return self._error(404, f"model {req.get('model')!r} not served (have {state.model_name!r})")
            except (ValueError, KeyError, TypeError) as exc:
                return self._error(400, f"bad request: {exc}")
            if state.delay:
                time.sleep(state.delay)
            with state.lock:
                texts = state.backend.generate(prompts, params)
            choices = [
                {"index": i * params.n + j, "text": t, "finish_reason": "stop", "logprobs": None}
                for i, outs in enumerate(texts)
                for j, t in enumerate(outs)
            ]
            self._send(
                200,
                {
                    "id": f"cmpl-{state.requests}",
                    "object": "text_completion",
                    "created": int(time.time()),
                    "model": state.model_name,
                    "choices": choices,
                },
            )

    return Handler


def _params(req: dict) -> SamplingParams:
    stop = req.get("stop") or ()
    return SamplingParams(
        n=int(req.get("n", 1)),
        temperature=float(req.get("temperature", 1.0)),
        top_p=float(req.get("top_p", 1.0)),
        max_new_tokens=int(req.get("max_tokens", 16)),
        seed=int(req.get("seed") or 0),
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
    )


def build_parser() -> argparse.ArgumentParser:
    """`selftaught serve`'s argument parser (the CLI reference in the docs is generated from it)."""
    ap = argparse.ArgumentParser(prog="selftaught serve", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="local model directory")
    ap.add_argument("--name", help="model name clients ask for (default: the directory)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ap.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    ap.add_argument("--api-key-env", help="environment variable with the key clients must send")
    ap.add_argument("--fail-first", type=int, default=0, help="answer the first N requests with 429/503")
    ap.add_argument("--delay", type=float, default=0.0, help="seconds to wait before answering (timeout tests)")
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    import os

    key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not key:
        parser.error(f"--api-key-env {args.api_key_env}: variable not set")
    state = State(HFBackend(args.model, batch_size=64), args.name or args.model, key, args.fail_first, args.delay)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    print(f"serving {state.model_name} on http://{args.host}:{server.server_address[1]}/v1", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
