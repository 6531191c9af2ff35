"""S3 request signing (reconciler/s3.py) against the worked
examples of AWS's Signature Version 4 documentation for S3, which use these credentials,
this bucket and this instant."""

from __future__ import annotations

import datetime
import hashlib

import pytest

from reconciler.s3 import (
    EMPTY_SHA256,
    Credentials,
    authorization_headers,
    presigned_query,
    signature,
    uri_encode,
)

pytestmark = pytest.mark.unit

AWS_EXAMPLE = Credentials(
    access_key_id="AKIAIOSFODNN7EXAMPLE",
    secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    region="us-east-1",
)
HOST = "examplebucket.s3.amazonaws.com"
TIMESTAMP = "20130524T000000Z"
NOW = datetime.datetime(2013, 5, 24, tzinfo=datetime.UTC)


def test_get_object_with_a_range() -> None:
    signed, signed_headers, scope = signature(
        AWS_EXAMPLE,
        method="GET",
        path="/test.txt",
        query={},
        headers={
            "Host": HOST,
            "Range": "bytes=0-9",
            "x-amz-content-sha256": EMPTY_SHA256,
            "x-amz-date": TIMESTAMP,
        },
        payload_hash=EMPTY_SHA256,
        timestamp=TIMESTAMP,
    )
    assert signed_headers == "host;range;x-amz-content-sha256;x-amz-date"
    assert scope == "20130524/us-east-1/s3/aws4_request"
    assert signed == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_put_object_signs_the_payload_and_encodes_the_key() -> None:
    body = b"Welcome to Amazon S3."
    headers = authorization_headers(
        AWS_EXAMPLE,
        method="PUT",
        host=HOST,
        path="/test$file.text",
        query={},
        body=body,
        now=NOW,
        extra_headers={
            "Date": "Fri, 24 May 2013 00:00:00 GMT",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
        },
    )
    assert headers["x-amz-content-sha256"] == hashlib.sha256(body).hexdigest()
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
        "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
        "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    )


def test_get_bucket_lifecycle_signs_a_valueless_query_parameter() -> None:
    headers = authorization_headers(
        AWS_EXAMPLE, method="GET", host=HOST, path="/", query={"lifecycle": ""}, body=b"", now=NOW
    )
    assert headers["authorization"].endswith(
        "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
    )


def test_list_objects_sorts_the_query() -> None:
    headers = authorization_headers(
        AWS_EXAMPLE,
        method="GET",
        host=HOST,
        path="/",
        query={"prefix": "J", "max-keys": "2"},
        body=b"",
        now=NOW,
    )
    assert headers["authorization"].endswith(
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    )


def test_presigned_url() -> None:
    query = presigned_query(
        AWS_EXAMPLE, method="GET", host=HOST, path="/test.txt", now=NOW, expires_s=86400
    )
    assert query["X-Amz-Credential"] == "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
    assert query["X-Amz-Signature"] == (
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


def test_uri_encoding_keeps_only_unreserved_characters() -> None:
    assert uri_encode("a b/c~d$e+f", keep_slash=True) == "a%20b/c~d%24e%2Bf"
    assert uri_encode("a/b=c", keep_slash=False) == "a%2Fb%3Dc"


def test_the_secret_never_shows_in_a_repr() -> None:
    assert "EXAMPLEKEY" not in repr(AWS_EXAMPLE)
