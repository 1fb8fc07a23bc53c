#!/usr/bin/env python3
"""Regenerates the API Gateway event fixtures in this directory.

The client certificate is `fixture-client.pem` (made once with
`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null
 -out fixture-client.pem -days 36500 -subj "/C=US/O=Kairos Fixtures/CN=fixture-client"
 -addext extendedKeyUsage=clientAuth`). Its pre-rendered DN / serial / validity strings in the
events deliberately lie (CN=admin): the edge must read only the PEM.
Shapes follow the AWS docs (rest-api-mutual-tls, http-api-mutual-tls, Lambda authorizer
payloads) and the aws_lambda_events 1.2 fixtures. Run from this directory: python3 generate.py
"""
import json
import urllib.parse

pem = open("fixture-client.pem").read()
# a header a client could send: must never become an identity
forged = urllib.parse.quote(pem, safe="")
lies = {"subjectDN": "CN=admin,O=Kairos", "issuerDN": "CN=Kairos CA kairos.local,O=Kairos", "serialNumber": "1",
        "validity": {"notBefore": "Jan  1 00:00:00 2020 GMT", "notAfter": "Jan  1 00:00:00 2999 GMT"}}


def w(name, obj):
    with open(name, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def rest(method, path, stage, cert, body=None, headers=None, qs=None):
    h = {"Host": "auth.example.com", "User-Agent": "curl/8.5.0", "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678"}
    if body is not None:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    ident = {"sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0", "accountId": None, "apiKey": None,
             "caller": None, "user": None, "userArn": None}
    if cert:
        ident["clientCert"] = dict(clientCertPem=cert, **lies)
    return {"resource": "/{proxy+}", "path": path, "httpMethod": method, "headers": h,
            "multiValueHeaders": {k: [v] for k, v in h.items()},
            "queryStringParameters": qs,
            "multiValueQueryStringParameters": {k: [v] for k, v in qs.items()} if qs else None,
            "pathParameters": {"proxy": path.lstrip("/")}, "stageVariables": None,
            "requestContext": {"resourceId": "abc123", "resourcePath": "/{proxy+}", "httpMethod": method,
                               "extendedRequestId": "x1", "requestTime": "25/Nov/2026:15:00:00 +0000",
                               "path": f"/{stage}{path}" if stage else path, "accountId": "123456789012",
                               "protocol": "HTTP/1.1", "stage": stage, "domainPrefix": "auth",
                               "requestTimeEpoch": 1795618800000, "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                               "identity": ident, "domainName": "auth.example.com", "apiId": "1234567890"},
            "body": body, "isBase64Encoded": False}


def http2(method, path, stage, cert, body=None, headers=None, raw_query=""):
    h = {"host": "auth.example.com", "user-agent": "curl/8.5.0", "x-amzn-trace-id": "Root=1-67891233-abcdef012345678912345678"}
    if body is not None:
        h["content-type"] = "application/json"
    h.update(headers or {})
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    ctx = {"accountId": "123456789012", "apiId": "api-id", "domainName": "auth.example.com", "domainPrefix": "auth",
           "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10",
                    "userAgent": "curl/8.5.0"},
           "requestId": "id-v2", "routeKey": "$default", "stage": stage, "time": "25/Nov/2026:15:00:00 +0000",
           "timeEpoch": 1795618800000}
    if cert:
        ctx["authentication"] = {"clientCert": dict(clientCertPem=cert, **lies)}
    return {"version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": raw_query, "headers": h,
            "requestContext": ctx, "body": body, "isBase64Encoded": False}


body = json.dumps({"transaction_id": "txn-fixture-1", "context": {"device": "fixture"}})
w("rest-v1-mtls-stage.json", rest("POST", "/certificates", "prod", pem, body))
w("rest-v1-no-cert-forged-header.json",
  rest("GET", "/jwks", "prod", None, headers={"X-Amzn-Mtls-Clientcert": forged, "X-Client-Cert": forged,
                                              "X-SSL-Client-Cert": forged}))
w("rest-v1-unreadable-cert.json",
  rest("POST", "/certificates", "prod", "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", body))
w("http-v2-mtls-default-stage.json", http2("POST", "/certificates", "$default", pem, body))
w("http-v2-no-cert-forged-header.json",
  http2("GET", "/.well-known/oauth-authorization-server", "$default", None,
        headers={"x-amzn-mtls-clientcert": forged, "x-client-cert": forged}))
w("http-v2-mtls-named-stage.json", http2("GET", "/jwks", "prod", pem))

# authorizer events (tests replace Authorization and the PEM with real ones)
w("authorizer-rest-v1.json", {
    "type": "REQUEST", "methodArn": "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/payments",
    "resource": "/payments", "path": "/payments", "httpMethod": "GET",
    "headers": {"Authorization": "Bearer REPLACED", "Host": "api.example.com"},
    "multiValueHeaders": {"Authorization": ["Bearer REPLACED"], "Host": ["api.example.com"]},
    "queryStringParameters": {}, "multiValueQueryStringParameters": {}, "pathParameters": {}, "stageVariables": {},
    "requestContext": {"path": "/payments", "accountId": "123456789012", "resourceId": "r1", "stage": "prod",
                       "requestId": "auth-req-1",
                       "identity": {"sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0",
                                    "clientCert": dict(clientCertPem=pem, **lies)},
                       "resourcePath": "/payments", "httpMethod": "GET", "apiId": "abcdef1234"}})
w("authorizer-http-v2.json", {
    "version": "2.0", "type": "REQUEST",
    "routeArn": "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/$default/GET/payments",
    "identitySource": ["Bearer REPLACED"], "routeKey": "GET /payments", "rawPath": "/payments", "rawQueryString": "",
    "headers": {"authorization": "Bearer REPLACED", "host": "api.example.com"},
    "requestContext": {"accountId": "123456789012", "apiId": "abcdef1234", "domainName": "api.example.com",
                       "requestId": "auth-req-2", "authentication": {"clientCert": dict(clientCertPem=pem, **lies)},
                       "http": {"method": "GET", "path": "/payments", "protocol": "HTTP/1.1",
                                "sourceIp": "203.0.113.10", "userAgent": "curl/8.5.0"},
                       "routeKey": "GET /payments", "stage": "$default", "time": "25/Nov/2026:15:00:00 +0000",
                       "timeEpoch": 1795618800000},
    "pathParameters": {}, "stageVariables": {}})
