#!/usr/bin/env python3
"""Local stand-in for the template's HTTP API (API Gateway HTTP API, payload format 2.0).

Reads the routes from template.yaml (each function's HttpApi events: Path, Method, Auth, and the
function's BuildProperties.Binary), matches each request and hands it to the function running under
`cargo lambda watch`, returning status, headers and body unchanged.

Two ways to reach the function (--mode):
  invoke (default)  builds the API Gateway HTTP API event itself, as AWS would send it for this
                    route: routeKey "POST /v1/sites/{site_id}/events", pathParameters, stage
                    $default, cookies, base64 bodies for non-text content types, and an IAM
                    authorizer context on AWS_IAM routes. It POSTs that event to
                    http://127.0.0.1:WATCHPORT/2015-03-31/functions/<binary>/invocations and turns
                    the function's response ({statusCode, headers, multiValueHeaders, cookies,
                    body, isBase64Encoded}) back into HTTP.
  url               forwards the raw request to cargo lambda's function-URL endpoint
                    http://127.0.0.1:WATCHPORT/lambda-url/<binary>/<path>?<query>. cargo lambda
                    then builds a *Function URL* event: rawPath is the request path, the query
                    string passes through, but routeKey is "$default" and there are NO
                    pathParameters, unlike behind the real HTTP API.

Unknown path: 404 JSON. Known path, other method: 405 JSON with Allow. No answer within --timeout:
504. CORS: when the HttpApi has a CorsConfiguration, as it says (preflight answered here, headers
added, as API Gateway does); without one (the template today), the functions' own headers pass
through unchanged. AWS_IAM routes: requests are
passed without signature checks unless --require-sigv4, which refuses (403) requests that carry no
SigV4 Authorization header (the signature itself is not verified).

Binds 127.0.0.1 only. Dependencies: the standard library and PyYAML.

Usage: gateway.py --port PORT --watch-port WATCHPORT [--mode invoke|url] [--template FILE]
"""

from __future__ import annotations

import os
import sys

# Run under the repo's venv (.tools/venv: boto3, PyYAML) even when started as ./scripts/x.py.
_VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, ".tools", "venv")
if os.path.exists(os.path.join(_VENV, "bin", "python")) and os.path.realpath(sys.prefix) != os.path.realpath(_VENV):
    os.execv(os.path.join(_VENV, "bin", "python"), [os.path.join(_VENV, "bin", "python"), *sys.argv])

import argparse
import base64
import http.client
import json
import socket
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

import cfn_template

# Hop-by-hop headers are never forwarded (RFC 9110 7.6.1), nor the ones http.server sets itself.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "content-length", "date", "server",
}
# API Gateway passes these body types as text; everything else arrives base64-encoded.
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


def is_text(content_type: str | None) -> bool:
    if not content_type:
        return False
    ct = content_type.split(";")[0].strip().lower()
    return ct.startswith(TEXT_TYPES) or ct.endswith("+json") or ct.endswith("+xml")


class Router:
    def __init__(self, routes: list[cfn_template.Route]):
        self.routes = routes

    def match(self, path: str):
        """(route, path parameters) candidates for a path, most specific first."""
        segs = [s for s in path.split("/") if s]
        found = []
        for r in self.routes:
            params = self._match(r.segments, segs)
            if params is not None:
                literal = sum(1 for s in r.segments if not s.startswith("{"))
                found.append((literal, r, params))
        found.sort(key=lambda t: -t[0])
        return [(r, p) for _, r, p in found]

    @staticmethod
    def _match(pattern: list[str], segs: list[str]):
        params = {}
        for i, p in enumerate(pattern):
            if p.startswith("{") and p.endswith("+}"):  # greedy {proxy+}
                if i >= len(segs):
                    return None
                params[p[1:-2]] = unquote("/".join(segs[i:]))
                return params
            if i >= len(segs):
                return None
            if p.startswith("{") and p.endswith("}"):
                params[p[1:-1]] = unquote(segs[i])
            elif p != segs[i]:
                return None
        return params if len(pattern) == len(segs) else None


class RuntimeConnection(http.client.HTTPConnection):
    """A connection to cargo lambda watch with TCP_NODELAY, so a request is never held back."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Gateway(BaseHTTPRequestHandler):
    server_version = "affinity-local-gateway"
    # Keep-alive: every request's body is read whole (Content-Length or chunked) before the answer,
    # and every answer has a Content-Length, so the next request on the connection starts clean.
    protocol_version = "HTTP/1.1"
    # No 40 ms stall (Nagle's algorithm waiting for the client's delayed ACK, measured in
    # BENCHMARKS.md): TCP_NODELAY on every accepted socket, and the answer's head and body buffered
    # and sent in one write (http.server flushes wfile once the handler returns).
    disable_nagle_algorithm = True
    wbufsize = 1 << 16
    # Set on the class by main().
    router: Router
    mode: str
    watch_port: int
    cors: dict | None
    require_sigv4: bool
    timeout: float

    # --- plumbing ------------------------------------------------------------------------------
    def log_message(self, fmt, *args):  # one line per request, no bodies, no query strings
        sys.stderr.write("gateway: %s\n" % (fmt % args))

    def log_request(self, code="-", size="-"):
        path = urlsplit(self.path).path
        self.log_message('%s %s -> %s', self.command, path, code)

    def _read_body(self) -> bytes:
        """The request body, whole: by Content-Length, or chunked (RFC 9112 7.1; trailers skipped).

        Raises ValueError on a malformed length or chunk size (the caller answers 400 and closes).
        """
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline(1 << 16).split(b";")[0].strip() or b"x", 16)
                if size < 0:
                    raise ValueError("negative chunk size")
                if size == 0:
                    while self.rfile.readline(1 << 16) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1 << 16)
        raw = (self.headers.get("content-length") or "0").strip()
        if not raw.isdigit():
            raise ValueError(f"bad content-length {raw!r}")
        length = int(raw)
        return self.rfile.read(length) if length else b""

    def handle_expect_100(self):
        """`Expect: 100-continue`: the interim answer goes out now, not with the buffered final one."""
        ok = super().handle_expect_100()
        self.wfile.flush()
        return ok

    def _body_or_refuse(self) -> bytes | None:
        """The body, or None after answering 400 (a body we cannot frame ends the connection)."""
        try:
            return self._read_body()
        except ValueError:
            self.close_connection = True
            self._json(400, {"message": "Bad Request"})
            return None

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.send_response(status)
        sent = set()
        for k, v in headers:
            if k.lower() in HOP_BY_HOP:
                continue
            self.send_header(k, v)
            sent.add(k.lower())
        for k, v in self._cors_headers():
            if k.lower() not in sent:
                self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj, extra: list[tuple[str, str]] | None = None):
        self._send(status, [("content-type", "application/json")] + (extra or []), json.dumps(obj).encode())

    # --- CORS (the template's CorsConfiguration) -------------------------------------------------
    def _allowed_origin(self) -> str | None:
        origin = self.headers.get("origin")
        if not origin or not self.cors:
            return None
        allowed = self.cors.get("AllowOrigins") or []
        if "*" in allowed:
            return "*"
        return origin if origin in allowed else None

    def _cors_headers(self) -> list[tuple[str, str]]:
        origin = self._allowed_origin()
        if not origin:
            return []
        out = [("access-control-allow-origin", origin)]
        if origin != "*":
            out.append(("vary", "origin"))
        if self.cors.get("ExposeHeaders"):
            out.append(("access-control-expose-headers", ",".join(self.cors["ExposeHeaders"])))
        if self.cors.get("AllowCredentials"):
            out.append(("access-control-allow-credentials", "true"))
        return out

    def _preflight(self) -> bool:
        if not (self.command == "OPTIONS" and self.cors and self.headers.get("origin")
                and self.headers.get("access-control-request-method")):
            return False
        if self._body_or_refuse() is None:
            return True
        headers = []
        if self._allowed_origin():
            headers += [
                ("access-control-allow-methods", ",".join(self.cors.get("AllowMethods") or [])),
                ("access-control-allow-headers", ",".join(self.cors.get("AllowHeaders") or [])),
            ]
            if self.cors.get("MaxAge") is not None:
                headers.append(("access-control-max-age", str(self.cors["MaxAge"])))
        self._send(204, headers, b"")
        return True

    # --- dispatch ------------------------------------------------------------------------------
    def _handle(self):
        if self._preflight():
            return
        split = urlsplit(self.path)
        body = self._body_or_refuse()
        if body is None:
            return
        candidates = self.router.match(split.path)
        if not candidates:
            return self._json(404, {"message": "Not Found"})
        chosen = next(
            ((r, p) for r, p in candidates if r.method in (self.command, "ANY")
             or (self.command == "HEAD" and r.method == "GET")),
            None,
        )
        if chosen is None:
            allow = sorted({r.method for r, _ in candidates})
            return self._json(405, {"message": "Method Not Allowed"}, [("allow", ", ".join(allow))])
        route, params = chosen
        if route.auth == "AWS_IAM" and self.require_sigv4 and not (
            self.headers.get("authorization", "").startswith("AWS4-HMAC-SHA256")
        ):
            return self._json(403, {"message": "Forbidden"})
        try:
            if self.mode == "url":
                status, headers, out = self._forward_url(route, split, body)
            else:
                status, headers, out = self._invoke(route, params, split, body)
        except TimeoutError:
            self.log_message("%s did not answer in %.0f s (a function that failed to build or start "
                             "leaves the call hanging: see the functions log)", route.binary, self.timeout)
            return self._json(504, {"message": "Gateway Timeout"})
        except (OSError, http.client.HTTPException) as e:
            self.log_message("cannot reach cargo lambda watch on port %s: %s", self.watch_port, e)
            return self._json(502, {"message": "Bad Gateway"})
        self._send(status, headers, out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def __getattr__(self, name: str):
        # Any other method (TRACE, CONNECT, made-up ones): routed like the rest, so a known path
        # answers 405 with Allow and an unknown one 404, never http.server's 501 page.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    # --- mode url: cargo lambda's function-URL endpoint ------------------------------------------
    def _forward_url(self, route, split, body):
        target = f"/lambda-url/{route.binary}{split.path}" + (f"?{split.query}" if split.query else "")
        conn = RuntimeConnection("127.0.0.1", self.watch_port, timeout=self.timeout)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(self.command, target, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    # --- mode invoke: the event API Gateway would send -------------------------------------------
    def _event(self, route, params, split, body: bytes) -> dict:
        headers: dict[str, str] = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]},{v}" if k in headers else v
        # As API Gateway adds them (lambda_http takes the request URI's scheme from x-forwarded-proto).
        headers.setdefault("x-forwarded-for", self.client_address[0])
        headers.setdefault("x-forwarded-port", str(self.server.server_address[1]))
        headers.setdefault("x-forwarded-proto", "http")
        cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
        query: dict[str, str] = {}
        for k, v in parse_qsl(split.query, keep_blank_values=True):
            query[k] = f"{query[k]},{v}" if k in query else v
        now = datetime.now(timezone.utc)
        context = {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": headers.get("host", "127.0.0.1").split(".")[0],
            "http": {
                "method": self.command,
                "path": split.path,
                "protocol": self.request_version,
                "sourceIp": self.client_address[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }
        if route.auth == "AWS_IAM":
            context["authorizer"] = {"iam": {
                "accessKey": "LOCAL", "accountId": "123456789012", "callerId": "LOCAL",
                "principalOrgId": None, "userArn": "arn:aws:iam::123456789012:user/local-operator",
                "userId": "LOCAL", "cognitoIdentity": None,
            }}
        event = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": split.path,
            "rawQueryString": split.query,
            "headers": headers,
            "requestContext": context,
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if params:
            event["pathParameters"] = params
        if body:
            if is_text(headers.get("content-type")):
                try:
                    event["body"] = body.decode("utf-8")
                except UnicodeDecodeError:
                    event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
            else:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        return event

    def _invoke(self, route, params, split, body):
        event = self._event(route, params, split, body)
        conn = RuntimeConnection("127.0.0.1", self.watch_port, timeout=self.timeout)
        try:
            started = time.monotonic()
            conn.request(
                "POST", f"/2015-03-31/functions/{route.binary}/invocations",
                body=json.dumps(event).encode(), headers={"content-type": "application/json"},
            )
            resp = conn.getresponse()
            raw = resp.read()
            function_error = resp.getheader("x-amz-function-error")
        finally:
            conn.close()
        if resp.status == 404:
            self.log_message("function %s not found by cargo lambda watch: %s", route.binary, raw[:300])
            return 502, [("content-type", "application/json")], b'{"message":"Bad Gateway"}'
        if resp.status >= 300 or function_error:
            # API Gateway hides the function error from the client; show it in our log only.
            self.log_message("function %s failed (%s): %s", route.binary, resp.status, raw[:500])
            return 500, [("content-type", "application/json")], b'{"message":"Internal Server Error"}'
        self.log_message("%s handled in %.0f ms", route.binary, (time.monotonic() - started) * 1000)
        return self._response(raw)

    @staticmethod
    def _response(raw: bytes):
        try:
            out = json.loads(raw) if raw else None
        except ValueError:
            out = None
        if not isinstance(out, dict) or "statusCode" not in out:
            # Payload 2.0: a response without statusCode is a 200 JSON body.
            return 200, [("content-type", "application/json")], raw
        headers = [(k, str(v)) for k, v in (out.get("headers") or {}).items()]
        single = {k.lower() for k, _ in headers}
        for k, values in (out.get("multiValueHeaders") or {}).items():
            if k.lower() not in single:
                headers += [(k, str(v)) for v in values or []]
        headers += [("set-cookie", c) for c in out.get("cookies") or []]
        body = out.get("body") or ""
        data = base64.b64decode(body) if out.get("isBase64Encoded") else body.encode("utf-8")
        return int(out["statusCode"]), headers, data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--watch-port", type=int, required=True)
    ap.add_argument("--mode", choices=("invoke", "url"), default="invoke")
    ap.add_argument("--template", default=str(cfn_template.DEFAULT_TEMPLATE))
    ap.add_argument("--require-sigv4", action="store_true")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds to wait for a function (cargo lambda watch may compile on a first call)")
    args = ap.parse_args()

    template = cfn_template.load(args.template)
    routes = cfn_template.routes(template)
    Gateway.router = Router(routes)
    Gateway.mode = args.mode
    Gateway.watch_port = args.watch_port
    Gateway.cors = cfn_template.http_api_cors(template)
    Gateway.require_sigv4 = args.require_sigv4
    Gateway.timeout = args.timeout

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Gateway)
    server.daemon_threads = True
    for r in routes:
        print(f"gateway: {r.method:6} {r.path} -> {r.binary}{' (AWS_IAM)' if r.auth else ''}", file=sys.stderr)
    print(f"gateway: listening on http://127.0.0.1:{args.port} (mode {args.mode}, "
          f"cargo lambda watch on 127.0.0.1:{args.watch_port})", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
