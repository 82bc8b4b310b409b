"""Unit tests of the first-hour scripts: the local schedule (scheduler.py), the event reference's
checker (check_events_doc.py), and the documentation's links. No services needed. Run: make test, or
.tools/venv/bin/python -m unittest discover -s scripts/tests
"""

import json
import re
import sys
import threading
import unittest
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cfn_template  # noqa: E402
import check_events_doc  # noqa: E402
import scheduler  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATE = cfn_template.load()


class SchedulerTest(unittest.TestCase):
    def test_the_templates_schedule_is_tenant_deletes_sweep_every_minute(self):
        self.assertEqual(scheduler.schedules(TEMPLATE),
                         [scheduler.Schedule("TenantDeleteFunction", "tenant-delete", "Sweep", 60.0)])

    def test_rate_expressions(self):
        self.assertEqual(scheduler.parse_rate("rate(1 minute)"), 60.0)
        self.assertEqual(scheduler.parse_rate("rate(5 minutes)"), 300.0)
        self.assertEqual(scheduler.parse_rate("rate(2 hours)"), 7200.0)
        self.assertEqual(scheduler.parse_rate("rate(1 day)"), 86400.0)
        for bad in ("rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "cron(0 12 * * ? *)", ""):
            with self.assertRaises(ValueError, msg=bad):
                scheduler.parse_rate(bad)

    def test_the_event_has_the_shape_of_the_sample_eventbridge_event(self):
        sample = json.loads((ROOT / "events" / "tenant-delete-schedule.json").read_text())
        s = scheduler.schedules(TEMPLATE)[0]
        at = datetime(2026, 12, 2, 1, 2, 3, 456000, tzinfo=timezone.utc)
        event = scheduler.scheduled_event(s, at, "us-east-1")
        self.assertEqual(set(event), set(sample))
        for key in ("version", "detail-type", "source", "account", "region", "detail"):
            self.assertEqual(event[key], sample[key], key)
        self.assertEqual(event["time"], "2026-12-02T01:02:03Z")
        self.assertRegex(event["resources"][0], r"^arn:aws:events:us-east-1:123456789012:rule/")
        self.assertNotEqual(event["id"], scheduler.scheduled_event(s, at, "us-east-1")["id"])

    def test_a_tick_invokes_the_function_through_the_runtime_api(self):
        seen = []

        class Runtime(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                seen.append((self.path, json.loads(body)))
                answer = b'{"pending":0,"completed":[],"paused":[],"busy":[],"failed":[]}'
                self.send_response(200)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            scheduler.fire(server.server_address[1], scheduler.schedules(TEMPLATE)[0], "us-east-1", 5)
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(len(seen), 1)
        path, event = seen[0]
        self.assertEqual(path, "/2015-03-31/functions/tenant-delete/invocations")
        self.assertEqual(event["source"], "aws.events")
        self.assertEqual(event["detail-type"], "Scheduled Event")


class EventsDocTest(unittest.TestCase):
    def test_every_example_has_an_expected_status_and_runs_one_curl(self):
        found = check_events_doc.examples((ROOT / "docs" / "EVENTS.md").read_text())
        self.assertGreaterEqual(len(found), 15)
        for line, status, expected, script in found:
            self.assertIn(status, (200, 400, 401, 404, 415), line)
            self.assertEqual(script.count("curl "), 1, line)
            self.assertTrue(expected is None or isinstance(expected, dict), line)

    def test_contains_is_a_recursive_subset_with_lists_of_equal_length(self):
        c = check_events_doc.contains
        self.assertTrue(c({"a": 1, "b": [{"x": 1, "y": 2}]}, {"b": [{"x": 1}]}))
        self.assertFalse(c({"b": [{"x": 1}, {"x": 2}]}, {"b": [{"x": 1}]}))
        self.assertFalse(c({"a": 1}, {"a": 2}))
        self.assertFalse(c("text", {"a": 1}))
        self.assertTrue(c({"rejected": []}, {"rejected": []}))


class DocLinksTest(unittest.TestCase):
    def test_the_docs_link_only_files_of_the_repository_that_exist(self):
        docs = [ROOT / "README.md", ROOT / "tools" / "importer" / "README.md", *(ROOT / "docs").glob("*.md")]
        for doc in docs:
            for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
                if target.startswith(("http://", "https://", "#", "mailto:")):
                    continue
                path = (doc.parent / target.split("#")[0]).resolve()
                self.assertTrue(path.is_relative_to(ROOT), f"{doc.name}: {target} is outside the repository")
                self.assertTrue(path.exists(), f"{doc.name}: {target} does not exist")


if __name__ == "__main__":
    unittest.main()


class MakeDownTest(unittest.TestCase):
    """`make down` (stack.sh down) ends a `make up` (run_local.sh --foreground) that runs in the
    background: a stand-in process whose command line names run_local.sh, recorded as run_local.sh
    records itself, is stopped, and its pid file removed."""

    def test_down_stops_a_background_make_up(self):
        import os
        import subprocess
        import tempfile
        import time

        with tempfile.TemporaryDirectory() as stack:
            pids = Path(stack, "pids")
            pids.mkdir()
            # `exec -a` names the process as run_local.sh would be named in its command line.
            up = subprocess.Popen(["bash", "-c", "exec -a run_local.sh sleep 300"])
            try:
                time.sleep(0.2)
                (pids / "foreground.pid").write_text(str(up.pid))
                (pids / "foreground.marker").write_text("run_local.sh")
                env = dict(os.environ, AFFINITY_STACK_DIR=stack)
                down = subprocess.run([str(ROOT / "scripts/stack.sh"), "down"], env=env,
                                      capture_output=True, text=True, timeout=60)
                self.assertEqual(down.returncode, 0, down.stderr)
                self.assertEqual(up.wait(timeout=5), -15, "ended by TERM, as Ctrl-C's cleanup would be")
                self.assertIn(f"stopped make up (run_local.sh, pid {up.pid})", down.stderr)
                self.assertFalse((pids / "foreground.pid").exists())
            finally:
                if up.poll() is None:
                    up.kill()
