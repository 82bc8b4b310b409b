"""Unit tests of the contract checks: no test double in a deployed build, openapi.yaml against
template.yaml. Run: make test, or .tools/venv/bin/python -m unittest discover -s scripts/tests
"""

import contextlib
import copy
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import io
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cfn_template  # noqa: E402
import check_contract  # noqa: E402
import check_no_test_doubles  # noqa: E402
import gateway  # noqa: E402

REPO = Path(__file__).resolve().parent.parent.parent

# A workspace shaped like ours: a library with a `test-doubles` feature, a function binary that uses
# the library, and a test crate that enables the feature as a normal dependency.
TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Architectures: [arm64]
Resources:
  FnFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: fnbin
    Properties:
      CodeUri: .
      Handler: bootstrap
      Runtime: provided.al2023
"""


def write_workspace(root: Path, default_members: bool, tests_dep: str) -> Path:
    files = {
        "Cargo.toml": textwrap.dedent(f"""\
            [workspace]
            resolver = "2"
            members = ["lib", "fnbin", "tests"]
            {'default-members = ["fnbin"]' if default_members else ''}
            """),
        "lib/Cargo.toml": '[package]\nname = "lib"\nversion = "0.1.0"\nedition = "2021"\n\n'
                          '[features]\ntest-doubles = []\n',
        "lib/src/lib.rs": "#[cfg(feature = \"test-doubles\")]\npub struct MemoryStore;\n",
        "fnbin/Cargo.toml": '[package]\nname = "fnbin"\nversion = "0.1.0"\nedition = "2021"\n\n'
                            '[dependencies]\nlib = { path = "../lib" }\n',
        "fnbin/src/main.rs": "fn main() {}\n",
        "tests/Cargo.toml": '[package]\nname = "tests"\nversion = "0.1.0"\nedition = "2021"\n\n'
                            f'[{tests_dep}]\nlib = {{ path = "../lib", features = ["test-doubles"] }}\n',
        "tests/src/lib.rs": "",
        "template.yaml": TEMPLATE,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "template.yaml"


def run_check(*args) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = check_no_test_doubles.main(list(args))
    return rc, err.getvalue()


class NoTestDoublesTest(unittest.TestCase):
    def check(self, default_members: bool, tests_dep: str) -> tuple[int, str]:
        with tempfile.TemporaryDirectory() as d:
            template = write_workspace(Path(d), default_members, tests_dep)
            return run_check("--template", str(template))

    def test_a_test_crate_selected_with_the_functions_makes_the_check_fail(self):
        rc, err = self.check(default_members=False, tests_dep="dependencies")
        self.assertEqual(rc, 1, err)
        self.assertIn('FnFunction (--bin fnbin, aarch64-unknown-linux-gnu): feature "test-doubles" is enabled on lib',
                      err)

    def test_default_members_keep_the_test_crate_out_of_the_deployed_build(self):
        rc, err = self.check(default_members=True, tests_dep="dependencies")
        self.assertEqual(rc, 0, err)
        self.assertIn('FnFunction (--bin fnbin, aarch64-unknown-linux-gnu): no "test-doubles"', err)

    def test_a_dev_dependency_never_reaches_a_release_build(self):
        rc, err = self.check(default_members=False, tests_dep="dev-dependencies")
        self.assertEqual(rc, 0, err)

    def test_this_repositorys_functions_build_without_test_doubles(self):
        rc, err = run_check("--template", str(REPO / "template.yaml"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(err.count('no "test-doubles"'), 5, err)

    def test_the_cargo_tree_it_reads_is_the_one_sam_build_resolves(self):
        # Proof that the tiny workspace's finding is real: cargo itself reports the feature on.
        with tempfile.TemporaryDirectory() as d:
            write_workspace(Path(d), default_members=False, tests_dep="dependencies")
            out = subprocess.run(["cargo", "tree", "-e", "normal,features", "-i", "lib", "--target",
                                  "aarch64-unknown-linux-gnu"], cwd=d, capture_output=True, text=True, check=True)
            self.assertIn('lib feature "test-doubles"', out.stdout)


class ContractTest(unittest.TestCase):
    """openapi.yaml against template.yaml, the README and the Rust error codes."""

    spec = check_contract.load_contract(REPO / "openapi.yaml")
    template = cfn_template.load(REPO / "template.yaml")
    readme = (REPO / "README.md").read_text()

    def test_the_contract_is_valid_openapi_3_1(self):
        self.assertEqual(check_contract.validity(self.spec), [])

    def test_the_contract_has_every_route_of_the_template_and_no_other(self):
        self.assertEqual(check_contract.routes(self.spec, self.template), [])
        self.assertEqual(len(check_contract.contract_routes(self.spec)), 16)

    def test_a_route_missing_from_the_contract_is_named(self):
        spec = copy.deepcopy(self.spec)
        del spec["paths"]["/v1/sites/{site_id}/events/import"]
        self.assertEqual(check_contract.routes(spec, self.template), [
            "route POST /v1/sites/{site_id}/events/import (IngestFunction) is in template.yaml but not in the contract"])

    def test_a_route_only_in_the_contract_is_named(self):
        spec = copy.deepcopy(self.spec)
        spec["paths"]["/v1/sites/{site_id}/events"]["get"] = {"responses": {"200": {"description": "x"}}}
        self.assertEqual(check_contract.routes(spec, self.template),
                         ["route GET /v1/sites/{site_id}/events is in the contract but not in template.yaml"])

    def test_operator_routes_must_require_iam_in_the_contract(self):
        spec = copy.deepcopy(self.spec)
        spec["paths"]["/v1/tenants/{tenant_id}"]["delete"]["security"] = [{"apiKey": []}]
        self.assertEqual(check_contract.routes(spec, self.template), [
            "route DELETE /v1/tenants/{tenant_id} is AWS_IAM in template.yaml; the contract says security ['apiKey']"])

    def test_the_error_codes_are_the_readmes(self):
        self.assertEqual(check_contract.codes(self.spec, self.readme, None), [])
        readme = self.readme.replace("| `misconfigured` |", "| `misconfigured_x` |")
        self.assertEqual(check_contract.codes(self.spec, readme, None), [
            "README error codes differ from the contract: only in README ['misconfigured_x'], "
            "only in the contract ['misconfigured']"])

    def test_the_error_codes_are_the_rust_enums_when_it_exists(self):
        rust = textwrap.dedent('''\
            pub enum ErrorCode { BadRequest, Teapot }
            impl ErrorCode {
                pub fn as_str(self) -> &'static str {
                    match self {
                        Self::BadRequest => "bad_request",
                        Self::Teapot => "teapot",
                    }
                }
            }
            ''')
        self.assertEqual(check_contract.rust_codes(rust), ["bad_request", "teapot"])
        [problem] = check_contract.codes(self.spec, self.readme, rust)
        self.assertIn("only in Rust ['teapot']", problem)
        self.assertIsNone(check_contract.rust_codes("pub struct ApiError;"))


class PrivacyMapTest(unittest.TestCase):
    """docs/PRIVACY.md names modules and tests: each must exist, or the promise has lost its proof."""

    def test_every_test_and_module_the_privacy_map_names_exists(self):
        text = (REPO / "docs" / "PRIVACY.md").read_text()
        refs = re.findall(r"`([\w/.-]+\.(?:rs|py))::(?:(\w+)::)?(\w+)`", text)
        self.assertGreater(len(refs), 30)
        for path, cls, name in refs:
            source = (REPO / path).read_text()
            for item in filter(None, (cls, name)):
                self.assertTrue(re.search(rf"(fn|def|class) {item}\b", source),
                                f"{path}::{item} is named in docs/PRIVACY.md but does not exist")
        for path in set(re.findall(r"`((?:shared|functions|tools|scripts)/[\w/.-]+\.(?:rs|py|toml))`", text)):
            self.assertTrue((REPO / path).is_file(), f"{path} named in docs/PRIVACY.md")


class FakeRuntime(BaseHTTPRequestHandler):
    """cargo lambda's invoke API: answers every invocation with the event it got, as a 200 JSON body."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        event = json.loads(self.rfile.read(int(self.headers["content-length"])))
        body = json.dumps({"statusCode": 200, "headers": {"content-type": "application/json"},
                           "body": json.dumps({"body": event.get("body"), "path": event["rawPath"]})}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class GatewaySocketTest(unittest.TestCase):
    """The gateway's HTTP/1.1 handling: no Nagle stall, keep-alive, request bodies framed right."""

    @classmethod
    def setUpClass(cls):
        cls.runtime = ThreadingHTTPServer(("127.0.0.1", 0), FakeRuntime)
        threading.Thread(target=cls.runtime.serve_forever, daemon=True).start()
        gateway.Gateway.router = gateway.Router(cfn_template.routes(cfn_template.load(REPO / "template.yaml")))
        gateway.Gateway.mode = "invoke"
        gateway.Gateway.watch_port = cls.runtime.server_address[1]
        gateway.Gateway.cors = None
        gateway.Gateway.require_sigv4 = False
        gateway.Gateway.timeout = 10
        gateway.Gateway.log_message = lambda *a: None
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), gateway.Gateway)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        for srv in (cls.server, cls.runtime):
            srv.shutdown()
            srv.server_close()

    def exchange(self, raw: bytes, answers: int = 1) -> list[bytes]:
        """Sends raw bytes on one connection; returns each answer (head and body)."""
        with socket.create_connection(self.server.server_address, timeout=10) as s:
            s.sendall(raw)
            f = s.makefile("rb")
            out = []
            for _ in range(answers):
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = f.readline()
                    if not line:
                        return out
                    head += line
                length = int(next(l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")))
                out.append(head + f.read(length))
            return out

    def test_answers_and_connections_to_the_runtime_use_tcp_nodelay(self):
        # socketserver sets TCP_NODELAY on every accepted socket when this is true.
        self.assertTrue(gateway.Gateway.disable_nagle_algorithm)
        conn = gateway.RuntimeConnection("127.0.0.1", self.runtime.server_address[1], timeout=5)
        conn.connect()
        self.assertEqual(conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)
        conn.close()
        [answer] = self.exchange(b"GET /v1/sites/s/shoppers/g/recommendations HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer)
        self.assertIn(b'"path": "/v1/sites/s/shoppers/g/recommendations"', answer)

    def test_two_requests_on_one_keep_alive_connection_get_two_answers(self):
        body = b'{"events": []}'
        req = (b"POST /v1/sites/s/events HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
               b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        answers = self.exchange(req + req.replace(b"/v1/sites/s/", b"/v1/sites/t/"), answers=2)
        self.assertEqual(len(answers), 2)
        self.assertIn(b'"path": "/v1/sites/s/events"', answers[0])
        self.assertIn(b'"path": "/v1/sites/t/events"', answers[1])

    def test_a_chunked_body_is_read_whole(self):
        req = (b"POST /v1/sites/s/events HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
               b"transfer-encoding: chunked\r\n\r\n5\r\n{\"eve\r\n9\r\nnts\": []}\r\n0\r\n\r\n")
        [answer] = self.exchange(req)
        self.assertIn(b'"body": "{\\"events\\": []}"', answer)

    def test_a_malformed_content_length_is_a_400_not_a_dropped_connection(self):
        [answer] = self.exchange(b"POST /v1/sites/s/events HTTP/1.1\r\nHost: x\r\ncontent-length: 1x\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer)


if __name__ == "__main__":
    unittest.main()
