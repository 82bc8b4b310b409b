"""Unit tests of the local-stack scripts (no services needed). Run: make test, or
.tools/venv/bin/python -m unittest discover -s scripts/tests
"""

import base64
import json
import sys
import unittest
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cfn_template  # noqa: E402
import create_tables  # noqa: E402
import gateway  # noqa: E402
import stream_pump  # noqa: E402

TEMPLATE = cfn_template.load()


class TemplateTest(unittest.TestCase):
    def test_short_tags_become_long_form(self):
        env = cfn_template.global_env(TEMPLATE)
        self.assertEqual(env["TENANTS_TABLE"], {"Ref": "TenantsTable"})
        stream = TEMPLATE["Resources"]["AggregateFunction"]["Properties"]["Events"]["NewEvents"]
        self.assertEqual(cfn_template.getatt_target(stream["Properties"]["Stream"]), ("EventsTable", "StreamArn"))

    def test_every_table_has_an_env_var_and_a_local_name(self):
        names = {lid: cfn_template.local_table_name(lid) for lid in cfn_template.tables(TEMPLATE)}
        self.assertEqual(names, {
            "TenantsTable": "affinity-tenants", "EventsTable": "affinity-events",
            "ProfilesTable": "affinity-profiles", "PopularityTable": "affinity-popularity",
        })
        self.assertEqual(set(cfn_template.table_env_vars(TEMPLATE)), set(names))

    def test_tables_with_many_items_per_tenant_have_the_by_site_index(self):
        for lid in ("EventsTable", "ProfilesTable"):
            gsis = cfn_template.tables(TEMPLATE)[lid]["GlobalSecondaryIndexes"]
            self.assertEqual([(g["IndexName"], g["KeySchema"][0]["AttributeName"], g["Projection"]["ProjectionType"])
                              for g in gsis], [("by_site", "site_id", "KEYS_ONLY")])

    def test_every_function_names_its_binary(self):
        self.assertEqual(sorted(cfn_template.binaries(TEMPLATE)),
                         ["aggregate", "consent", "ingest", "recommend", "tenant-delete"])

    def test_operator_routes_need_iam(self):
        iam = {r.route_key for r in cfn_template.routes(TEMPLATE) if r.auth == "AWS_IAM"}
        self.assertEqual(iam, {"DELETE /v1/tenants/{tenant_id}", "GET /v1/tenants/{tenant_id}/deletion"})


class CreateTablesTest(unittest.TestCase):
    def test_events_table_request_has_stream_and_gsi_but_no_sse(self):
        req = create_tables.create_table_request("affinity-events", cfn_template.tables(TEMPLATE)["EventsTable"])
        self.assertEqual(req["StreamSpecification"], {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
        self.assertEqual(req["BillingMode"], "PAY_PER_REQUEST")
        self.assertNotIn("ProvisionedThroughput", req)
        self.assertNotIn("SSESpecification", req)
        self.assertEqual(req["GlobalSecondaryIndexes"][0]["IndexName"], "by_site")


class GatewayRouterTest(unittest.TestCase):
    router = gateway.Router(cfn_template.routes(TEMPLATE))

    def test_path_parameters_are_decoded(self):
        (route, params), *_ = self.router.match("/v1/sites/s%201/shoppers/g:42/recommendations")
        self.assertEqual(route.binary, "recommend")
        self.assertEqual(params, {"site_id": "s 1", "shopper_id": "g:42"})

    def test_literal_segments_win(self):
        (route, params), *_ = self.router.match("/v1/sites/s1/events/import")
        self.assertEqual(route.path, "/v1/sites/{site_id}/events/import")

    def test_unknown_path(self):
        self.assertEqual(self.router.match("/v1/nope"), [])
        self.assertEqual(self.router.match("/v1/sites/s1/events/extra/segments"), [])

    def test_greedy_parameter(self):
        r = gateway.Router([cfn_template.Route("GET", "/files/{proxy+}", "F", "f", None, ["files", "{proxy+}"])])
        self.assertEqual(r.match("/files/a/b")[0][1], {"proxy": "a/b"})

    def test_text_types(self):
        self.assertTrue(gateway.is_text("text/plain;charset=UTF-8"))
        self.assertTrue(gateway.is_text("application/vnd.api+json"))
        self.assertFalse(gateway.is_text("application/octet-stream"))
        self.assertFalse(gateway.is_text(None))

    def test_function_response_becomes_http(self):
        raw = json.dumps({"statusCode": 201, "headers": {"content-type": "text/plain"},
                          "multiValueHeaders": {"x-a": ["1", "2"]}, "cookies": ["c=1"],
                          "body": base64.b64encode(b"\x00hi").decode(), "isBase64Encoded": True}).encode()
        status, headers, body = gateway.Gateway._response(raw)
        self.assertEqual((status, body), (201, b"\x00hi"))
        self.assertIn(("x-a", "2"), headers)
        self.assertIn(("set-cookie", "c=1"), headers)

    def test_bare_json_response_is_200(self):
        self.assertEqual(gateway.Gateway._response(b'{"a":1}')[0], 200)


class StreamPumpTest(unittest.TestCase):
    boto_record = {
        "eventID": "e1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "ddblocal",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 1, 1, tzinfo=timezone.utc),
            "Keys": {"pk": {"S": "s#g:1"}, "sk": {"S": "ev1"}},
            "NewImage": {"pk": {"S": "s#g:1"}, "b": {"B": b"\x00\xff"}, "bs": {"BS": [b"\x01"]},
                         "m": {"M": {"n": {"N": "1"}}}},
            "SequenceNumber": "100", "SizeBytes": 42, "StreamViewType": "NEW_IMAGE",
        },
    }

    def test_record_has_the_lambda_shape(self):
        rec = stream_pump.lambda_record(self.boto_record, "arn:stream", "us-east-1")
        self.assertEqual(rec["awsRegion"], "us-east-1")
        self.assertEqual(rec["eventSourceARN"], "arn:stream")
        self.assertEqual(rec["dynamodb"]["ApproximateCreationDateTime"], 1767225600)
        self.assertEqual(rec["dynamodb"]["NewImage"]["b"], {"B": "AP8="})
        self.assertEqual(rec["dynamodb"]["NewImage"]["bs"], {"BS": ["AQ=="]})
        json.dumps(rec)  # serialisable

    def test_filter_criteria(self):
        (source,) = cfn_template.stream_sources(TEMPLATE)
        self.assertEqual(source.batch_size, 1000)
        insert = stream_pump.lambda_record(self.boto_record, "a", "r")
        remove = dict(insert, eventName="REMOVE")
        self.assertTrue(stream_pump.passes(source.patterns, insert))
        self.assertFalse(stream_pump.passes(source.patterns, remove))
        nested = [{"dynamodb": {"NewImage": {"pk": {"S": ["s#g:1"]}}}}]
        self.assertTrue(stream_pump.passes(nested, insert))
        self.assertTrue(stream_pump.passes([], remove))


if __name__ == "__main__":
    unittest.main()
