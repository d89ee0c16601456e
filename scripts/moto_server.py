#!/usr/bin/env python3
"""The local AWS emulator for sigtrail's tests: moto's server with two gaps of moto 5.2.5 filled.

1. KMS Sign/Verify with MessageType=DIGEST. moto ignores MessageType and hashes the message
   again, so a DIGEST signature only verifies over sha256(digest). Real KMS signs the digest as
   given and checks its length against the algorithm. Here DIGEST signs the digest as given
   (cryptography's Prehashed), with the same length check. RAW RSASSA-PSS is redone as well:
   moto uses salt length MAX, KMS uses the digest length.

2. CloudTrail LookupEvents. moto does not implement it (the server answers 500,
   NotImplementedError). This is a STAND-IN, not an emulation of CloudTrail recording anything:
   it answers from CloudTrail records in the file or directory named by the environment variable
   SIGTRAIL_MOTO_LOOKUP_EVENTS_FILE, re-read on every call, so a test writes the records it wants
   the API to return. A file holds a CloudTrail log file ({"Records": [...]}), a list of
   records, or one record; a directory holds such files (*.json, *.json.gz, read recursively).
   Supported like the real API: one LookupAttribute (EventId, EventName, ReadOnly, Username,
   ResourceType, ResourceName, EventSource, AccessKeyId), StartTime/EndTime, MaxResults (1-50,
   default 50), NextToken; events newest first, each with EventId, EventName, ReadOnly,
   AccessKeyId, EventTime, EventSource, Username, Resources and CloudTrailEvent (the record as a
   JSON string). Unlike the real API there is no default 90-day window: without StartTime every
   record is eligible, so fixtures with fixed old dates keep working.

4. CloudTrail ListPublicKeys. moto does not implement it either. Also a STAND-IN: it answers
   with the keys in the file named by SIGTRAIL_MOTO_CLOUDTRAIL_PUBLIC_KEYS (re-read on every
   call), in the form `aws cloudtrail list-public-keys --output json` prints ({"PublicKeyList":
   [{"Value": base64 DER, "Fingerprint", "ValidityStartTime", "ValidityEndTime"}]}, times as
   epoch seconds). The tests write there the public half of the RSA key they sign their digest
   files with (moto delivers no log files or digests either). Keys whose validity does not
   overlap StartTime..EndTime are left out, as the real API does.

3. A count of KMS calls, for tests and the benchmark to check "one GetPublicKey per key per
   run, one Sign per record" from the server's side: when SIGTRAIL_MOTO_KMS_CALLS names a file,
   every GetPublicKey, DescribeKey, Sign and Verify request appends a line "ACTION KEYID" (the
   KeyId as the request gave it: key id, ARN, alias or alias ARN), so a test counts its own key.

usage: python moto_server.py [-H 127.0.0.1] [-p PORT]   (the flags of moto_server)
"""
import base64
import gzip
import hashlib
import json
import os
import sys
import threading
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

import moto
from moto.cloudtrail.responses import CloudTrailResponse
from moto.core.exceptions import JsonRESTError
from moto.kms import responses as kms_responses
from moto.kms import utils as kms_utils
from moto.kms.exceptions import ValidationException

# ---------------------------------------------------------------------------------------------
# 1. KMS MessageType=DIGEST
# ---------------------------------------------------------------------------------------------

# The key classes do not see the request, so the response handler publishes MessageType here.
# werkzeug serves each request on its own thread.
_request = threading.local()


def _is_digest() -> bool:
    return getattr(_request, "message_type", "RAW") == "DIGEST"


def _hash(algorithm: str) -> hashes.HashAlgorithm:
    for suffix, cls in (("SHA_256", hashes.SHA256), ("SHA_384", hashes.SHA384), ("SHA_512", hashes.SHA512)):
        if algorithm.endswith(suffix):
            return cls()
    raise ValidationException(f"Unsupported signing algorithm {algorithm}")


def _prehashed(message: bytes, algorithm: str):
    """The hash of `algorithm`, after checking that `message` is a digest of its length."""
    h = _hash(algorithm)
    if len(message) != h.digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    return h


def _rsa_padding(algorithm: str, h: hashes.HashAlgorithm):
    if algorithm.startswith("RSASSA_PSS"):
        return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
    return padding.PKCS1v15()


_moto = {
    "ec_sign": kms_utils.ECDSAPrivateKey.sign,
    "ec_verify": kms_utils.ECDSAPrivateKey.verify,
    "rsa_sign": kms_utils.RSAPrivateKey.sign,
    "rsa_verify": kms_utils.RSAPrivateKey.verify,
}


def _ec_sign(self, message, signing_algorithm):
    if not _is_digest():
        return _moto["ec_sign"](self, message, signing_algorithm)
    kms_utils.validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
    h = _prehashed(message, signing_algorithm)
    return self.private_key.sign(message, ec.ECDSA(utils.Prehashed(h)))


def _ec_verify(self, message, signature, signing_algorithm):
    if not _is_digest():
        return _moto["ec_verify"](self, message, signature, signing_algorithm)
    kms_utils.validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
    h = _prehashed(message, signing_algorithm)
    try:
        self.private_key.public_key().verify(signature, message, ec.ECDSA(utils.Prehashed(h)))
        return True
    except InvalidSignature:
        return False


def _rsa_sign(self, message, signing_algorithm):
    pss = signing_algorithm.startswith("RSASSA_PSS")
    if not _is_digest() and not pss:
        return _moto["rsa_sign"](self, message, signing_algorithm)
    kms_utils.validate_signing_algorithm(signing_algorithm, kms_utils.SigningAlgorithm.rsa_signing_algorithms())
    if not _is_digest():
        h = _hash(signing_algorithm)
        return self.private_key.sign(message, _rsa_padding(signing_algorithm, h), h)
    h = _prehashed(message, signing_algorithm)
    return self.private_key.sign(message, _rsa_padding(signing_algorithm, h), utils.Prehashed(h))


def _rsa_verify(self, message, signature, signing_algorithm):
    if not _is_digest():
        return _moto["rsa_verify"](self, message, signature, signing_algorithm)
    kms_utils.validate_signing_algorithm(signing_algorithm, kms_utils.SigningAlgorithm.rsa_signing_algorithms())
    h = _prehashed(message, signing_algorithm)
    try:
        self.private_key.public_key().verify(
            signature, message, _rsa_padding(signing_algorithm, h), utils.Prehashed(h)
        )
        return True
    except InvalidSignature:
        return False


def _publish_message_type(handler):
    def wrapper(self, *args, **kwargs):
        _request.message_type = self._get_param("MessageType") or "RAW"
        try:
            return handler(self, *args, **kwargs)
        finally:
            _request.message_type = "RAW"

    wrapper.__name__ = handler.__name__
    return wrapper


kms_utils.ECDSAPrivateKey.sign = _ec_sign
kms_utils.ECDSAPrivateKey.verify = _ec_verify
kms_utils.RSAPrivateKey.sign = _rsa_sign
kms_utils.RSAPrivateKey.verify = _rsa_verify
kms_responses.KmsResponse.sign = _publish_message_type(kms_responses.KmsResponse.sign)
kms_responses.KmsResponse.verify = _publish_message_type(kms_responses.KmsResponse.verify)

# ---------------------------------------------------------------------------------------------
# 2. CloudTrail LookupEvents stand-in
# ---------------------------------------------------------------------------------------------

LOOKUP_EVENTS_ENV = "SIGTRAIL_MOTO_LOOKUP_EVENTS_FILE"
ATTRIBUTE_KEYS = (
    "EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName", "EventSource",
    "AccessKeyId",
)


class _Error(JsonRESTError):
    code = 400

    def __init__(self, error_type: str, message: str):
        super().__init__(error_type, message)


def _read_records(path: str) -> list:
    if not path:
        return []
    if os.path.isdir(path):
        records = []
        for top, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                if name.endswith((".json", ".json.gz")):
                    records.extend(_read_records(os.path.join(top, name)))
        return records
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    doc = json.loads(data) if data.strip() else []
    if isinstance(doc, dict):
        return doc.get("Records", [doc] if "eventName" in doc else [])
    return doc


def _epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).replace("Z", "+00:00")
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


def _username(identity: dict):
    if identity.get("userName"):
        return identity["userName"]
    kind = identity.get("type")
    if kind == "Root":
        return "root"
    if kind == "AssumedRole" and identity.get("arn"):
        return identity["arn"].rsplit("/", 1)[-1]  # the role session name, as CloudTrail shows it
    return identity.get("principalId")


def _event(record: dict) -> dict:
    identity = record.get("userIdentity") or {}
    read_only = record.get("readOnly")
    event = {
        "EventId": record.get("eventID"),
        "EventName": record.get("eventName"),
        "ReadOnly": None if read_only is None else str(read_only).lower(),
        "AccessKeyId": identity.get("accessKeyId"),
        "EventTime": _epoch(record["eventTime"]) if record.get("eventTime") else None,
        "EventSource": record.get("eventSource"),
        "Username": _username(identity),
        "Resources": [
            {k: v for k, v in (("ResourceType", r.get("type")), ("ResourceName", r.get("ARN"))) if v}
            for r in record.get("resources") or []
        ],
        "CloudTrailEvent": json.dumps(record, separators=(",", ":")),
    }
    return {k: v for k, v in event.items() if v is not None}


def _matches(event: dict, key: str, value: str) -> bool:
    if key in ("ResourceType", "ResourceName"):
        return any(r.get(key) == value for r in event["Resources"])
    return event.get(key) == value


def _query_id(request: dict) -> str:
    """Identifies a query, so a NextToken is only accepted for the query that issued it."""
    query = {k: request.get(k) for k in ("LookupAttributes", "StartTime", "EndTime", "EventCategory")}
    return hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]


def lookup_events(self) -> str:
    request = json.loads(self.body or "{}")
    attributes = request.get("LookupAttributes") or []
    if len(attributes) > 1:
        raise _Error("InvalidLookupAttributesException", "You cannot specify more than one lookup attribute.")
    for a in attributes:
        if a.get("AttributeKey") not in ATTRIBUTE_KEYS:
            raise _Error("InvalidLookupAttributesException", f"Invalid attribute key {a.get('AttributeKey')!r}.")
    start = _epoch(request["StartTime"]) if request.get("StartTime") is not None else None
    end = _epoch(request["EndTime"]) if request.get("EndTime") is not None else None
    if start is not None and end is not None and end < start:
        raise _Error("InvalidTimeRangeException", "EndTime must not be before StartTime.")
    max_results = request.get("MaxResults", 50)
    if not isinstance(max_results, int) or not 1 <= max_results <= 50:
        raise _Error("InvalidMaxResultsException", "MaxResults must be between 1 and 50.")
    offset = 0
    query = _query_id(request)
    if request.get("NextToken"):
        try:
            token = json.loads(base64.b64decode(request["NextToken"]))
            offset = int(token["offset"])
            if token["query"] != query:
                raise ValueError("token of another query")
        except (ValueError, KeyError, TypeError):
            raise _Error("InvalidNextTokenException", "Invalid NextToken.")

    events = [_event(r) for r in _read_records(os.environ.get(LOOKUP_EVENTS_ENV, ""))]
    for a in attributes:
        events = [e for e in events if _matches(e, a["AttributeKey"], a.get("AttributeValue"))]
    if start is not None:
        events = [e for e in events if e.get("EventTime", 0) >= start]
    if end is not None:
        events = [e for e in events if e.get("EventTime", 0) <= end]
    events.sort(key=lambda e: e.get("EventTime", 0), reverse=True)  # newest first, like CloudTrail

    page = events[offset:offset + max_results]
    response = {"Events": page}
    if offset + max_results < len(events):
        token = json.dumps({"offset": offset + max_results, "query": query}).encode()
        response["NextToken"] = base64.b64encode(token).decode()
    return json.dumps(response)


CloudTrailResponse.lookup_events = lookup_events


# ---------------------------------------------------------------------------------------------
# 4. CloudTrail ListPublicKeys stand-in
# ---------------------------------------------------------------------------------------------

PUBLIC_KEYS_ENV = "SIGTRAIL_MOTO_CLOUDTRAIL_PUBLIC_KEYS"


def list_public_keys(self):
    path = os.environ.get(PUBLIC_KEYS_ENV, "")
    keys = []
    if path and os.path.exists(path):
        with open(path) as f:
            keys = json.load(f).get("PublicKeyList", [])
    start = self._get_param("StartTime")
    end = self._get_param("EndTime")
    start = _epoch(start) if start is not None else None
    end = _epoch(end) if end is not None else None
    out = []
    for k in keys:
        if start is not None and k.get("ValidityEndTime", float("inf")) < start:
            continue
        if end is not None and k.get("ValidityStartTime", 0) > end:
            continue
        out.append(k)
    return json.dumps({"PublicKeyList": out})


CloudTrailResponse.list_public_keys = list_public_keys


# ---------------------------------------------------------------------------------------------
# 3. KMS call log
# ---------------------------------------------------------------------------------------------
_log_lock = threading.Lock()


def _logged(action, handler):
    def wrapper(self, *args, **kwargs):
        path = os.environ.get("SIGTRAIL_MOTO_KMS_CALLS")
        if path:
            with _log_lock, open(path, "a") as f:
                f.write(f"{action} {self._get_param('KeyId')}\n")
        return handler(self, *args, **kwargs)

    wrapper.__name__ = handler.__name__
    return wrapper


for _action, _method in (("GetPublicKey", "get_public_key"), ("DescribeKey", "describe_key"),
                         ("Sign", "sign"), ("Verify", "verify")):
    setattr(kms_responses.KmsResponse, _method, _logged(_action, getattr(kms_responses.KmsResponse, _method)))


if __name__ == "__main__":
    from moto.server import main

    print(
        f"moto {moto.__version__} with the KMS DIGEST fix and the LookupEvents and ListPublicKeys stand-ins "
        f"({LOOKUP_EVENTS_ENV}={os.environ.get(LOOKUP_EVENTS_ENV, '')})",
        file=sys.stderr,
        flush=True,
    )
    main(sys.argv[1:])
