"""Unit tests of the local-stack scripts (no services needed). Run: make test, or
.tools/venv/bin/python -m unittest discover -s scripts/tests
"""

import base64
import json
import sys
import unittest
from unittest import mock
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cfn_template  # noqa: E402
import check_events  # noqa: E402
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
        # The profiles table also finds a shopper's links (by_link) and an address's claimants
        # (by_claim): sparse indexes, docs/DESIGN.md "Links".
        want = {
            "EventsTable": [("by_site", "site_id", "KEYS_ONLY")],
            "ProfilesTable": [("by_site", "site_id", "KEYS_ONLY"), ("by_link", "link_pk", "ALL"),
                              ("by_claim", "claim_pk", "ALL")],
        }
        for lid, indexes in want.items():
            gsis = cfn_template.tables(TEMPLATE)[lid]["GlobalSecondaryIndexes"]
            self.assertEqual([(g["IndexName"], g["KeySchema"][0]["AttributeName"], g["Projection"]["ProjectionType"])
                              for g in gsis], indexes)

    def test_every_function_names_its_binary(self):
        self.assertEqual(sorted(cfn_template.binaries(TEMPLATE)),
                         ["aggregate", "consent", "ingest", "recommend", "tenant-delete"])

    def test_operator_routes_need_iam(self):
        iam = {r.route_key for r in cfn_template.routes(TEMPLATE) if r.auth == "AWS_IAM"}
        self.assertEqual(iam, {"DELETE /v1/tenants/{tenant_id}", "GET /v1/tenants/{tenant_id}/deletion"})


class DeployableTemplateTest(unittest.TestCase):
    """What a security review and `sam deploy` need of template.yaml (issue 6), beyond cfn-lint."""

    resources = TEMPLATE["Resources"]

    def of_type(self, kind):
        return {lid: r for lid, r in self.resources.items() if r["Type"] == kind}

    def test_the_deployed_template_has_no_dependency_cycle(self):
        # cfn-lint and `sam validate` do not see a cycle through SAM's generated resources;
        # CloudFormation refuses it at deploy time.
        deployed = cfn_template.sam_transform(TEMPLATE)
        self.assertIsNone(cfn_template.dependency_cycle(deployed))

    def test_a_cycle_is_found(self):
        tpl = {"Resources": {
            "Key": {"Type": "AWS::KMS::Key", "Properties": {"P": {"Fn::GetAtt": ["Role", "Arn"]}}},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {"P": {"Fn::Sub": "${Table.Arn}/index/x"}}},
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"K": {"Ref": "Key"}}},
        }}
        self.assertEqual(cfn_template.dependency_cycle(tpl), ["Key", "Role", "Table", "Key"])

    def test_globals_as_the_issue_says(self):
        g = TEMPLATE["Globals"]["Function"]
        self.assertEqual((g["Runtime"], g["Architectures"], g["Handler"], g["Tracing"]),
                         ("provided.al2023", ["arm64"], "bootstrap", "Active"))
        self.assertEqual(g["LoggingConfig"]["LogFormat"], "JSON")
        self.assertTrue(g["MemorySize"] and g["Timeout"])

    def test_every_function_builds_with_cargo_lambda_and_has_its_own_role_and_log_group(self):
        roles, groups = set(), set()
        for lid, fn in self.of_type("AWS::Serverless::Function").items():
            self.assertEqual(fn["Metadata"]["BuildMethod"], "rust-cargolambda", lid)
            props = fn["Properties"]
            roles.add(cfn_template.getatt_target(props["Role"])[0])
            group = cfn_template.ref_target(props["LoggingConfig"]["LogGroup"])
            groups.add(group)
            self.assertIn("RetentionInDays", self.resources[group]["Properties"])
            self.assertNotIn("Policies", props, "with an explicit Role, Policies would be ignored")
        self.assertEqual(len(roles), 5)
        self.assertEqual(len(groups), 5)

    def test_tables_are_on_demand_encrypted_with_the_data_key_recoverable_and_protected(self):
        for lid, table in self.of_type("AWS::DynamoDB::Table").items():
            p = table["Properties"]
            self.assertEqual(table["DeletionPolicy"], "Retain", lid)
            self.assertEqual(p["BillingMode"], "PAY_PER_REQUEST", lid)
            self.assertEqual(p["SSESpecification"], {"SSEEnabled": True, "SSEType": "KMS",
                                                      "KMSMasterKeyId": {"Ref": "DataKey"}}, lid)
            self.assertTrue(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], lid)
            self.assertTrue(p["DeletionProtectionEnabled"], lid)
        for lid in ("TenantsTable", "EventsTable"):
            self.assertEqual(self.resources[lid]["Properties"]["TimeToLiveSpecification"],
                             {"AttributeName": "expires_at", "Enabled": True})

    def test_keys_rotate_and_no_key_policy_has_a_wildcard_principal(self):
        for lid, key in self.of_type("AWS::KMS::Key").items():
            self.assertTrue(key["Properties"]["EnableKeyRotation"], lid)
            for s in key["Properties"]["KeyPolicy"]["Statement"]:
                self.assertNotEqual(s["Principal"], "*")
                self.assertNotIn("*", cfn_template._as_list(s["Principal"].get("AWS", [])))

    def test_secrets_are_no_echo_parameters(self):
        params = TEMPLATE["Parameters"]
        for name in ("ShopifyClientSecret", "BigCommerceClientSecret"):
            self.assertTrue(params[name]["NoEcho"], name)

    def test_stage_throttling_the_schedule_and_the_api_url(self):
        api = self.resources["HttpApi"]["Properties"]
        self.assertEqual(set(api["DefaultRouteSettings"]), {"ThrottlingBurstLimit", "ThrottlingRateLimit"})
        # The storefront routes have their own bucket, so their flood cannot take the other routes'.
        storefront = {"POST /v1/sites/{site_id}/events",
                      "GET /v1/sites/{site_id}/shoppers/{shopper_id}/recommendations"}
        self.assertEqual(set(api["RouteSettings"]), storefront)
        route_keys = {r.route_key for r in cfn_template.routes(TEMPLATE)}
        self.assertLessEqual(storefront, route_keys, "RouteSettings name existing routes")
        for key in storefront:
            self.assertEqual(api["RouteSettings"][key],
                             {"ThrottlingBurstLimit": {"Ref": "StorefrontBurstLimit"},
                              "ThrottlingRateLimit": {"Ref": "StorefrontRateLimit"}}, key)
        # At the defaults every route together stays under half the account's 10,000 requests/s.
        params = TEMPLATE["Parameters"]
        total = (len(storefront) * params["StorefrontRateLimit"]["Default"]
                 + (len(route_keys) - len(storefront)) * params["ApiRateLimit"]["Default"])
        self.assertLessEqual(total, 5000)
        # The functions that must always answer have reserved concurrency; the others do not.
        for lid, fn in self.of_type("AWS::Serverless::Function").items():
            reserved = fn["Properties"].get("ReservedConcurrentExecutions")
            if lid in ("ConsentFunction", "TenantDeleteFunction"):
                self.assertEqual(reserved, {"Fn::If": ["ReservesConcurrency",
                                                       {"Ref": "CriticalReservedConcurrency"},
                                                       {"Ref": "AWS::NoValue"}]}, lid)
            else:
                self.assertIsNone(reserved, lid)
        sweep = self.resources["TenantDeleteFunction"]["Properties"]["Events"]["Sweep"]
        self.assertEqual((sweep["Type"], sweep["Properties"]["Schedule"]), ("Schedule", "rate(1 minute)"))
        self.assertIn("ApiUrl", TEMPLATE["Outputs"])


class PermissionsTest(unittest.TestCase):
    """scripts/cfn_template.py permissions: what tests/tests/iam_scope.rs compares with the code."""

    @staticmethod
    def template(*statements, key_statements=()):
        return {
            "Globals": {"Function": {"Environment": {"Variables": {"KMS_KEY_ID": {"Ref": "DataKey"},
                                                                     "TENANTS_TABLE": {"Ref": "TenantsTable"}}}}},
            "Resources": {
                "TenantsTable": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
                "FnLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {}},
                "FnRole": {"Type": "AWS::IAM::Role", "Properties": {}},
                "FnPolicy": {"Type": "AWS::IAM::Policy", "Properties": {
                    "Roles": [{"Ref": "FnRole"}],
                    "PolicyDocument": {"Statement": list(statements)}}},
                "DataKey": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {"Statement": list(key_statements)}}},
                "Fn": {"Type": "AWS::Serverless::Function", "Metadata": {"BuildProperties": {"Binary": "fn"}},
                       "Properties": {"Role": {"Fn::GetAtt": ["FnRole", "Arn"]}}},
            },
        }

    def allowed(self, tpl):
        return {(a["action"], a["resource"]) for a in cfn_template.permissions(tpl)["Fn"]["allowed"]}

    def test_resources_are_named_as_the_recorder_names_them(self):
        tpl = self.template(
            {"Effect": "Allow", "Action": ["dynamodb:Query"],
             "Resource": [{"Fn::GetAtt": ["TenantsTable", "Arn"]}, {"Fn::Sub": "${TenantsTable.Arn}/index/by_site"}]},
            {"Effect": "Allow", "Action": "dynamodb:GetRecords", "Resource": {"Fn::GetAtt": ["TenantsTable", "StreamArn"]}},
            {"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": {"Fn::GetAtt": ["FnLogs", "Arn"]}},
            key_statements=[
                {"Effect": "Allow", "Principal": {"AWS": {"Fn::GetAtt": ["FnRole", "Arn"]}}, "Action": "kms:Decrypt",
                 "Resource": "*", "Condition": {"StringEquals": {"kms:EncryptionContext:purpose": "pii-hash-key"}}},
                {"Effect": "Allow", "Principal": {"AWS": [{"Fn::GetAtt": ["FnRole", "Arn"]}]}, "Action": "kms:Decrypt",
                 "Resource": "*", "Condition": {"StringEquals": {
                     "kms:ViaService": {"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"},
                     "kms:CallerAccount": {"Ref": "AWS::AccountId"}}}},
                {"Effect": "Allow", "Principal": {"AWS": {"Fn::GetAtt": ["FnRole", "Arn"]}}, "Action": "kms:Encrypt",
                 "Resource": "*"},
            ])
        with mock.patch.dict("os.environ", {"TENANTS_TABLE": "t-local"}):
            self.assertEqual(self.allowed(tpl), {
                ("dynamodb:Query", "t-local"), ("dynamodb:Query", "t-local/index/by_site"),
                ("dynamodb:GetRecords", "t-local/stream"), ("logs:PutLogEvents", "log-group:FnLogs"),
                ("kms:Decrypt", "purpose=pii-hash-key"), ("kms:Decrypt", "via=dynamodb"),
                ("kms:Encrypt", "key:DataKey"),
            })

    def test_what_it_cannot_judge_is_refused(self):
        table = {"Fn::GetAtt": ["TenantsTable", "Arn"]}
        for bad in (
            {"Effect": "Deny", "Action": "dynamodb:GetItem", "Resource": table},
            {"Effect": "Allow", "NotAction": "dynamodb:GetItem", "Resource": table},
            {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": table,
             "Condition": {"StringEquals": {"aws:SourceVpc": "x"}}},
            {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "arn:aws:dynamodb:*:*:table/*"},
        ):
            with self.subTest(bad=bad), self.assertRaises(cfn_template.PolicyError):
                cfn_template.permissions(self.template(bad))

    def test_the_real_template_is_readable(self):
        perms = cfn_template.permissions(TEMPLATE)
        self.assertEqual(set(perms), {"IngestFunction", "RecommendFunction", "AggregateFunction",
                                      "ConsentFunction", "TenantDeleteFunction"})
        read_only = {a["action"] for a in perms["RecommendFunction"]["allowed"] if a["action"].startswith("dynamodb:")}
        self.assertEqual(read_only, {"dynamodb:GetItem", "dynamodb:BatchGetItem"}, "recommend is read only")


class CheckEventsTest(unittest.TestCase):
    """scripts/check_events.py finds what `sam local invoke -e` would hand a function wrongly."""

    @staticmethod
    def event(name):
        return json.loads((cfn_template.REPO_ROOT / "events" / name).read_text())

    def problems(self, event):
        return check_events.check(event, TEMPLATE)

    def test_the_samples_pass_and_name_their_function(self):
        self.assertEqual(self.problems(self.event("recommend.json")), ([], "RecommendFunction"))
        self.assertEqual(self.problems(self.event("tenant-delete-schedule.json")), ([], "TenantDeleteFunction"))
        self.assertEqual(self.problems(self.event("aggregate-stream.json")), ([], "AggregateFunction"))

    def test_http_mistakes_are_named(self):
        e = self.event("recommend.json")
        del e["requestContext"]["http"]["method"]
        e["requestContext"]["timeEpoch"] = "1795968000000"
        problems, _ = self.problems(e)
        self.assertIn("missing requestContext.http.method", problems)
        self.assertIn("requestContext.timeEpoch is string, the SAM sample's is number", problems)
        e = self.event("recommend.json")
        e["routeKey"] = e["requestContext"]["routeKey"] = "GET /v1/nowhere"
        self.assertEqual(self.problems(e)[1], None)
        e = self.event("recommend.json")
        e["pathParameters"]["site_id"] = "other"
        self.assertTrue(any("pathParameters" in p for p in self.problems(e)[0]))

    def test_iam_context_only_on_operator_routes(self):
        e = self.event("tenant-delete.json")
        del e["requestContext"]["authorizer"]
        self.assertIn("an AWS_IAM route: requestContext.authorizer.iam is missing", self.problems(e)[0])
        e = self.event("recommend.json")
        e["requestContext"]["authorizer"] = {"iam": {}}
        self.assertIn("requestContext.authorizer.iam on a route without IAM authorization", self.problems(e)[0])

    def test_stream_batches_come_from_the_table_that_feeds_a_function(self):
        e = self.event("aggregate-stream.json")
        e["Records"][0]["eventSourceARN"] = e["Records"][0]["eventSourceARN"].replace("affinity-events", "affinity-profiles")
        e["Records"][1]["dynamodb"]["StreamViewType"] = "KEYS_ONLY"
        problems, _ = self.problems(e)
        self.assertIn("Records[0]: eventSourceARN is no stream that feeds a function of template.yaml", problems)
        self.assertIn("Records[1]: StreamViewType must be NEW_IMAGE, the table's", problems)

    def test_unknown_events_are_refused(self):
        self.assertEqual(self.problems({"hello": 1})[1], None)
        e = self.event("tenant-delete-schedule.json")
        e["detail-type"] = "Something"
        self.assertTrue(self.problems(e)[0])


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
