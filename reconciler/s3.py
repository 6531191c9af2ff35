"""AWS Signature Version 4 for S3, and a small S3 client on the standard library.

The operator's backup Jobs use it to put a dump into a bucket and read it back
(transfer.py), and the local cluster's scripts to set up their object store; both run
where only the standard library can be counted on. Path-style requests only
(http(s)://HOST:PORT/BUCKET/KEY), which every S3-compatible store serves without DNS
tricks. The signing follows the AWS documentation's "Signature Calculations for the
Authorization Header" and "Authenticating Requests: Using Query Parameters"; the unit
tests check it against the worked examples there.

An upload signs the SHA-256 of its payload (not UNSIGNED-PAYLOAD): the store recomputes it
and refuses a body that does not match, so a dump that was damaged on the way is never
stored under its name.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import http.client
import os
import ssl
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclasses.dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = dataclasses.field(repr=False)
    region: str = "us-east-1"


def uri_encode(text: str, *, keep_slash: bool) -> str:
    """RFC 3986 percent-encoding of everything but the unreserved characters (and '/',
    for the path), as SigV4 wants it."""
    return urllib.parse.quote(text, safe="/~" if keep_slash else "~")


def canonical_query(query: Mapping[str, str]) -> str:
    pairs = sorted(
        (uri_encode(k, keep_slash=False), uri_encode(v, keep_slash=False)) for k, v in query.items()
    )
    return "&".join(f"{k}={v}" for k, v in pairs)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def amz_date(now: datetime.datetime) -> str:
    return now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def signature(
    credentials: Credentials,
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_hash: str,
    timestamp: str,
    service: str = "s3",
) -> tuple[str, str, str]:
    """(signature, signed header names, credential scope) of one request. `headers` must
    hold every header to sign, host included; `timestamp` is the x-amz-date value."""
    date = timestamp[:8]
    scope = f"{date}/{credentials.region}/{service}/aws4_request"
    canonical_headers = {
        name.lower(): " ".join(value.strip().split()) for name, value in headers.items()
    }
    signed_headers = ";".join(sorted(canonical_headers))
    canonical_request = "\n".join(
        [
            method,
            uri_encode(path, keep_slash=True),
            canonical_query(query),
            "".join(f"{name}:{canonical_headers[name]}\n" for name in sorted(canonical_headers)),
            signed_headers,
            payload_hash,
        ]
    )
    string_to_sign = "\n".join(
        [ALGORITHM, timestamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = signing_key(credentials.secret_access_key, date, credentials.region, service)
    signed = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return signed, signed_headers, scope


def authorization_headers(
    credentials: Credentials,
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    body: bytes,
    now: datetime.datetime,
    extra_headers: Mapping[str, str] | None = None,
    payload_hash: str | None = None,
) -> dict[str, str]:
    """The headers that sign a request in the Authorization header, payload hashed
    (`payload_hash`: the hash of a body sent from a file rather than `body`)."""
    timestamp = amz_date(now)
    headers = {
        "host": host,
        "x-amz-content-sha256": payload_hash or hashlib.sha256(body).hexdigest(),
        "x-amz-date": timestamp,
        **{name.lower(): value for name, value in (extra_headers or {}).items()},
    }
    signed, signed_headers, scope = signature(
        credentials,
        method=method,
        path=path,
        query=query,
        headers=headers,
        payload_hash=headers["x-amz-content-sha256"],
        timestamp=timestamp,
    )
    headers["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope},"
        f"SignedHeaders={signed_headers},Signature={signed}"
    )
    return headers


def presigned_query(
    credentials: Credentials,
    *,
    method: str,
    host: str,
    path: str,
    now: datetime.datetime,
    expires_s: int,
) -> dict[str, str]:
    """The query parameters of a presigned URL: whoever holds it may send this one
    request until it expires, with no credentials of their own."""
    timestamp = amz_date(now)
    query = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": (
            f"{credentials.access_key_id}/{timestamp[:8]}/{credentials.region}/s3/aws4_request"
        ),
        "X-Amz-Date": timestamp,
        "X-Amz-Expires": str(expires_s),
        "X-Amz-SignedHeaders": "host",
    }
    signed, _, _ = signature(
        credentials,
        method=method,
        path=path,
        query=query,
        headers={"host": host},
        payload_hash=UNSIGNED_PAYLOAD,
        timestamp=timestamp,
    )
    return {**query, "X-Amz-Signature": signed}


@dataclasses.dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


class S3Error(RuntimeError):
    pass


CHUNK_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclasses.dataclass(frozen=True)
class S3Client:
    """Path-style S3 over HTTP or HTTPS (`ca_file`: the CA bundle that signs the store's
    certificate, when it is not one the system trusts)."""

    endpoint: str  # http(s)://HOST[:PORT]
    credentials: Credentials
    timeout_s: float = 10.0
    ca_file: str | None = None

    @property
    def host(self) -> str:
        return str(urllib.parse.urlsplit(self.endpoint).netloc)

    def _connection(self) -> http.client.HTTPConnection:
        if urllib.parse.urlsplit(self.endpoint).scheme == "https":
            context = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection(self.host, timeout=self.timeout_s, context=context)
        return http.client.HTTPConnection(self.host, timeout=self.timeout_s)

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | BinaryIO = b"",
        payload_hash: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> http.client.HTTPResponse:
        """Sends one signed request; the caller reads and closes the response. A file
        body needs its `payload_hash` and a content-length in `extra_headers`."""
        query = dict(query or {})
        headers = authorization_headers(
            self.credentials,
            method=method,
            host=self.host,
            path=path,
            query=query,
            body=body if isinstance(body, bytes) else b"",
            now=datetime.datetime.now(datetime.UTC),
            extra_headers=extra_headers,
            payload_hash=payload_hash,
        )
        target = uri_encode(path, keep_slash=True)
        if query:
            target += f"?{canonical_query(query)}"
        connection = self._connection()
        try:
            connection.request(method, target, body=body, headers=headers)
            return connection.getresponse()
        except BaseException:
            connection.close()
            raise

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> Response:
        response = self._send(method, path, query=query, body=body)
        try:
            return Response(response.status, response.read(), dict(response.getheaders()))
        finally:
            response.close()

    def ensure_bucket(self, bucket: str) -> bool:
        """Creates the bucket; False if this account already owned it."""
        response = self.request("PUT", f"/{bucket}")
        if response.status == 200:
            return True
        if response.status == 409 and b"BucketAlreadyOwnedByYou" in response.body:
            return False
        raise S3Error(f"PUT /{bucket}: {response.status} {response.body.decode(errors='replace')}")

    def bucket_exists(self, bucket: str) -> bool:
        response = self.request("HEAD", f"/{bucket}")
        if response.status in (200, 404):
            return response.status == 200
        raise S3Error(f"HEAD /{bucket}: {response.status}")

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        response = self.request("PUT", f"/{bucket}/{key}", body=data)
        if response.status != 200:
            raise S3Error(f"PUT /{bucket}/{key}: {response.status} {response.body!r}")

    def get_object(self, bucket: str, key: str) -> bytes:
        response = self.request("GET", f"/{bucket}/{key}")
        if response.status != 200:
            raise S3Error(f"GET /{bucket}/{key}: {response.status} {response.body!r}")
        return response.body

    def delete_object(self, bucket: str, key: str) -> None:
        response = self.request("DELETE", f"/{bucket}/{key}")
        if response.status not in (200, 204):
            raise S3Error(f"DELETE /{bucket}/{key}: {response.status} {response.body!r}")

    def presigned_url(
        self, method: str, bucket: str, key: str, *, endpoint: str, expires_s: int = 600
    ) -> str:
        """A URL for one request through `endpoint` (e.g. the in-cluster Service name),
        which the signature binds as the Host."""
        host = urllib.parse.urlsplit(endpoint).netloc
        path = f"/{bucket}/{key}"
        query = presigned_query(
            self.credentials,
            method=method,
            host=host,
            path=path,
            now=datetime.datetime.now(datetime.UTC),
            expires_s=expires_s,
        )
        return f"{endpoint}{uri_encode(path, keep_slash=True)}?{canonical_query(query)}"

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's size; None when there is no such object."""
        response = self.request("HEAD", f"/{bucket}/{key}")
        if response.status == 404:
            return None
        if response.status != 200:
            raise S3Error(f"HEAD /{bucket}/{key}: {response.status}")
        length = {name.lower(): value for name, value in response.headers.items()}.get(
            "content-length", ""
        )
        if not length.isdigit():
            raise S3Error(f"HEAD /{bucket}/{key}: no content-length")
        return ObjectInfo(key, int(length))

    def put_file(self, bucket: str, key: str, path: Path, sha256: str) -> None:
        """Uploads a file whose SHA-256 the caller computed: the store checks the body
        against it and stores nothing if they differ."""
        size = path.stat().st_size
        with path.open("rb") as body:
            response = self._send(
                "PUT",
                f"/{bucket}/{key}",
                body=body,
                payload_hash=sha256,
                extra_headers={"content-length": str(size)},
            )
            try:
                content = response.read()
            finally:
                response.close()
        if response.status != 200:
            raise S3Error(f"PUT /{bucket}/{key}: {response.status} {_error_code(content)}")

    def get_file(
        self,
        bucket: str,
        key: str,
        target: Path,
        observe: Callable[[bytes], None] | None = None,
    ) -> str:
        """Downloads an object into `target`, synced; returns the SHA-256 of what was
        written. `observe` sees every chunk as it is written. A missing object is an
        S3Error naming the key."""
        response = self._send("GET", f"/{bucket}/{key}")
        try:
            if response.status != 200:
                raise S3Error(
                    f"GET /{bucket}/{key}: {response.status} {_error_code(response.read())}"
                )
            digest = hashlib.sha256()
            with target.open("wb") as out:
                while chunk := response.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    if observe is not None:
                        observe(chunk)
                out.flush()
                os.fsync(out.fileno())
            return digest.hexdigest()
        finally:
            response.close()

    def list_objects(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under `prefix` (ListObjectsV2, page by page), in key order."""
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token is not None:
                query["continuation-token"] = token
            response = self.request("GET", f"/{bucket}", query=query)
            if response.status != 200:
                raise S3Error(f"LIST /{bucket}/{prefix}: {response.status}")
            root = ElementTree.fromstring(response.body)  # noqa: S314 (our own store's reply)
            namespace = root.tag.partition("}")[0] + "}" if root.tag.startswith("{") else ""
            for item in root.iter(f"{namespace}Contents"):
                key = item.findtext(f"{namespace}Key") or ""
                size = item.findtext(f"{namespace}Size") or "0"
                yield ObjectInfo(key, int(size))
            if root.findtext(f"{namespace}IsTruncated") != "true":
                return
            token = root.findtext(f"{namespace}NextContinuationToken")
            if not token:
                return


def _error_code(body: bytes) -> str:
    """The <Code> of an S3 error reply (e.g. XAmzContentSHA256Mismatch), or its start."""
    text = body.decode(errors="replace")
    start, end = text.find("<Code>"), text.find("</Code>")
    if 0 <= start < end:
        return text[start + len("<Code>") : end]
    return text[:200]
