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

5. Athena query execution. moto records queries but runs none (it answers from a queue of
   canned results). This is a STAND-IN EXECUTOR, not Athena: when the file named by
   SIGTRAIL_MOTO_ATHENA_TABLES exists (JSON, re-read on every call), StartQueryExecution runs
   the query with DuckDB over a view with the CloudTrail table's schema (docs/athena.md), built
   from the objects in moto's own S3 under the table's location, and queues the rows through
   moto's documented results queue (`set_athena_result`, what POST
   /moto-api/static/athena/query-results does) before moto takes it. The file:
     {"tables": {"DB.TABLE": {"location": "s3://BUCKET/PREFIX/", "layout": "org"|"account",
                              "throttle": N}}}
   * The translation from Athena's dialect is what trail-for's queries need and no more
     (athena_duckdb.py): json_extract_scalar -> json_extract_string, cardinality -> len,
     "DB"."TABLE" -> the view. Everything else (struct fields, filter with a lambda, LIKE, IN,
     BETWEEN) DuckDB reads as is.
   * Partitions: `org` gives account, region and date (yyyy/MM/dd) from each key's
     AWSLogs/[o-ORG/]ACCT/CloudTrail/REGION/YYYY/MM/DD/ (AWS's organization table, projected);
     `account` gives timestamp (yyyy/MM/dd). "$path" is the object's s3:// URI. Only log files
     under CloudTrail/ are rows, as the table's storage template reads.
   * DataScannedInBytes is what Athena bills for JSON: the whole size of every object in the
     partitions the query selects. The stand-in sums the objects' sizes over the conditions of
     the query's WHERE that name only partition columns (trail-for writes one condition a line).
   * A table not in the file, or SQL DuckDB refuses, gives a FAILED execution with Athena's
     wording (TABLE_NOT_FOUND / the error). A table's "throttle": N answers its first N
     StartQueryExecution calls with TooManyRequestsException (counted by the stand-in; the
     file is never written back, since tests add their tables to it meanwhile).
   * GetQueryResults pages like Athena: MaxResults (1-1000, default 1000) rows a page, the
     column names as the first row of the first page, NextToken.

6. CloudTrail Lake queries. moto does not implement StartQuery, DescribeQuery, GetQueryResults
   or CancelQuery. A STAND-IN, like 5.: an event data store named in the same file
     {"event_data_stores": {"ID": {"location": "s3://BUCKET/PREFIX/", "throttle": N}}}
   answers queries run by DuckDB (athena_duckdb.py, dialect `lake`) over the log files in
   moto's S3 under the location; an unknown store is EventDataStoreNotFoundException, SQL DuckDB
   refuses a FAILED query with its error. Queries finish at once; DescribeQuery gives
   QueryStatistics.BytesScanned (the sizes of the files read); GetQueryResults pages 1,000 rows
   (MaxQueryResults) with NextToken, each row a list of one-entry {column: value} maps, a NULL
   left out.

usage: python moto_server.py [-H 127.0.0.1] [-p PORT]   (the flags of moto_server)
"""
import base64
import gzip
import hashlib
import json
import os
import sys
import threading
import uuid
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


# ---------------------------------------------------------------------------------------------
# 5. Athena: a DuckDB executor behind moto's results queue
# ---------------------------------------------------------------------------------------------
import re as _re

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import athena_duckdb  # noqa: E402  (the DuckDB engine: view, translation, bytes scanned)

from moto.athena import responses as athena_responses

ATHENA_ENV = "SIGTRAIL_MOTO_ATHENA_TABLES"
_athena_lock = threading.Lock()
_athena_failed = {}   # QueryExecutionId -> (reason, error type)
_athena_scanned = {}  # QueryExecutionId -> bytes
_throttles = {}  # ("table" | "store", name) -> throttled calls still to come


def _athena_config():
    path = os.environ.get(ATHENA_ENV)
    if not path or not os.path.exists(path):
        return None, None
    with open(path) as f:
        return path, json.load(f)


def _objects(location: str, account_id: str):
    """(s3 uri, partition values, bytes) of every log file under the table's location."""
    from moto.s3.models import s3_backends, FakeKey

    bucket_name, _, prefix = location[len("s3://"):].partition("/")
    bucket = s3_backends[account_id]["aws"].get_bucket(bucket_name)
    out = []
    for name in sorted(bucket.keys.keys()):
        key = bucket.keys[name]
        if not isinstance(key, FakeKey) or not name.startswith(prefix):
            continue
        m = athena_duckdb.LAYOUT.search(name)
        if m:
            out.append((f"s3://{bucket_name}/{name}", m.groups(), key.value))
    return out


def _execute(sql: str, table: dict, account_id: str):
    """Runs `sql` (Athena's dialect) with DuckDB over the table's objects in moto's S3."""
    return athena_duckdb.execute(sql, _objects(table["location"], account_id), table.get("layout", "org"))


_original_start = athena_responses.AthenaResponse.start_query_execution


def _throttled(kind: str, name: str, entry) -> bool:
    """Whether this call on table or store `name` is one of the first `throttle` ones. Counted
    here, never written back: the tests add their tables to the same file meanwhile."""
    if entry is None or entry.get("throttle", 0) <= 0:
        return False
    with _athena_lock:
        left = _throttles.setdefault((kind, name), entry["throttle"])
        _throttles[(kind, name)] = left - 1
    return left > 0


def start_query_execution(self):
    _, config = _athena_config()
    if config is None:
        return _original_start(self)
    query = self._get_param("QueryString")
    database = (self._get_param("QueryExecutionContext") or {}).get("Database", "default")
    m = _re.search(r'FROM\s+"([^"]+)"\."([^"]+)"', query) or _re.search(r"FROM\s+(\w+)\.(\w+)", query)
    name = f"{m.group(1)}.{m.group(2)}" if m else ""
    table = config.get("tables", {}).get(name)
    if _throttled("table", name, table):
        raise _Error("TooManyRequestsException", "Rate exceeded (stand-in: throttle set in " + ATHENA_ENV + ")")
    failure, scanned = None, 0
    if table is None:
        failure = (f"TABLE_NOT_FOUND: line 1:1: Table 'awsdatacatalog.{name or database}' does not exist", "USER")
    else:
        try:
            columns, rows, scanned = _execute(query, table, self.current_account)
        except Exception as e:  # DuckDB refused the SQL: what Athena calls a failed query
            failure = (f"GENERIC_USER_ERROR: {e}", "USER")
        else:
            from moto.moto_api._internal.models import moto_api_backend

            header = {"Data": [{"VarCharValue": c} for c in columns]}
            data = [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows]
            column_info = [{"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": c,
                            "Label": c, "Type": "varchar", "Precision": 0, "Scale": 0,
                            "Nullable": "UNKNOWN", "CaseSensitive": True} for c in columns]
            moto_api_backend.set_athena_result(rows=[header] + data, column_info=column_info,
                                               account_id=self.current_account, region=self.region)
    answer = _original_start(self)
    exec_id = json.loads(answer)["QueryExecutionId"] if isinstance(answer, str) else None
    if exec_id:
        with _athena_lock:
            _athena_scanned[exec_id] = scanned
            if failure:
                _athena_failed[exec_id] = failure
    return answer


_original_get_execution = athena_responses.AthenaResponse.get_query_execution


def get_query_execution(self):
    answer = json.loads(_original_get_execution(self))
    exec_id = self._get_param("QueryExecutionId")
    execution = answer["QueryExecution"]
    with _athena_lock:
        failure = _athena_failed.get(exec_id)
        scanned = _athena_scanned.get(exec_id)
    if scanned is not None and execution["Status"]["State"] != "QUEUED":
        execution["Statistics"]["DataScannedInBytes"] = scanned
    if failure and execution["Status"]["State"] == "SUCCEEDED":
        execution["Status"]["State"] = "FAILED"
        execution["Status"]["StateChangeReason"] = failure[0]
        execution["Status"]["AthenaError"] = {"ErrorCategory": 2, "ErrorType": 1006,
                                              "Retryable": False, "ErrorMessage": failure[0]}
    return json.dumps(answer)


_original_get_results = athena_responses.AthenaResponse.get_query_results


def get_query_results(self):
    exec_id = self._get_param("QueryExecutionId")
    with _athena_lock:
        failure = _athena_failed.get(exec_id)
    if failure:
        raise _Error("InvalidRequestException", f"Query has not yet finished. Current state: FAILED: {failure[0]}")
    answer = json.loads(_original_get_results(self))
    size = int(self._get_param("MaxResults") or 1000)
    if not 1 <= size <= 1000:
        raise _Error("InvalidRequestException", "MaxResults must be between 1 and 1000")
    start = int(self._get_param("NextToken") or 0)
    rows = answer["ResultSet"]["Rows"]
    answer["ResultSet"]["Rows"] = rows[start:start + size]
    if start + size < len(rows):
        answer["NextToken"] = str(start + size)
    return json.dumps(answer)


athena_responses.AthenaResponse.start_query_execution = start_query_execution
athena_responses.AthenaResponse.get_query_execution = get_query_execution
athena_responses.AthenaResponse.get_query_results = get_query_results


# ---------------------------------------------------------------------------------------------
# 6. CloudTrail Lake: the same executor behind StartQuery / DescribeQuery / GetQueryResults
# ---------------------------------------------------------------------------------------------
_lake_queries = {}  # QueryId -> {"status", "rows", "columns", "scanned", "error"}


def _lake_store(name: str):
    _, config = _athena_config()
    store = (config or {}).get("event_data_stores", {}).get(name)
    if _throttled("store", name, store):
        raise _Error("MaxConcurrentQueriesException", "stand-in: throttle set in " + ATHENA_ENV)
    return store


def start_query(self):
    request = json.loads(self.body or "{}")
    sql = request.get("QueryStatement", "")
    m = _re.search(r"\bFROM ([A-Za-z0-9_-]+) e\b", sql)
    store = _lake_store(m.group(1)) if m else None
    if store is None:
        raise _Error("EventDataStoreNotFoundException",
                     f"The specified event data store {m.group(1) if m else ''} was not found.")
    query_id = str(uuid.uuid4())
    entry = {"status": "FINISHED", "rows": [], "columns": [], "scanned": 0, "error": None}
    try:
        objects = _objects(store["location"], self.current_account)
        entry["columns"], entry["rows"], entry["scanned"] = athena_duckdb.execute(sql, objects, "org", "lake")
    except Exception as e:  # DuckDB refused the SQL: a failed query
        entry["status"], entry["error"] = "FAILED", str(e)
    with _athena_lock:
        _lake_queries[query_id] = entry
    return json.dumps({"QueryId": query_id})


def _lake_query(self):
    request = json.loads(self.body or "{}")
    with _athena_lock:
        entry = _lake_queries.get(request.get("QueryId", ""))
    if entry is None:
        raise _Error("QueryIdNotFoundException", "The query ID does not exist or does not map to a query.")
    return request, entry


def describe_query(self):
    request, entry = _lake_query(self)
    answer = {"QueryId": request["QueryId"], "QueryStatus": entry["status"],
              "QueryStatistics": {"EventsMatched": len(entry["rows"]), "EventsScanned": len(entry["rows"]),
                                  "BytesScanned": entry["scanned"], "ExecutionTimeInMillis": 1}}
    if entry["error"]:
        answer["ErrorMessage"] = entry["error"]
    return json.dumps(answer)


def get_query_results(self):
    request, entry = _lake_query(self)
    if entry["status"] != "FINISHED":
        raise _Error("InactiveQueryException", f"The query is {entry['status']}: {entry['error']}")
    size = int(request.get("MaxQueryResults") or 1000)
    start = int(request.get("NextToken") or 0)
    page = entry["rows"][start:start + size]
    rows = [[{c: v} for c, v in zip(entry["columns"], row) if v is not None] for row in page]
    answer = {"QueryStatus": "FINISHED", "QueryResultRows": rows,
              "QueryStatistics": {"ResultsCount": len(rows), "TotalResultsCount": len(entry["rows"]),
                                  "BytesScanned": entry["scanned"]}}
    if start + size < len(entry["rows"]):
        answer["NextToken"] = str(start + size)
    return json.dumps(answer)


def cancel_query(self):
    request, entry = _lake_query(self)
    return json.dumps({"QueryId": request["QueryId"], "QueryStatus": entry["status"]})


CloudTrailResponse.start_query = start_query
CloudTrailResponse.describe_query = describe_query
CloudTrailResponse.get_query_results = get_query_results
CloudTrailResponse.cancel_query = cancel_query


if __name__ == "__main__":
    from moto.server import main

    print(
        f"moto {moto.__version__} with the KMS DIGEST fix, the LookupEvents and ListPublicKeys stand-ins and the Athena and Lake executors "
        f"({LOOKUP_EVENTS_ENV}={os.environ.get(LOOKUP_EVENTS_ENV, '')})",
        file=sys.stderr,
        flush=True,
    )
    main(sys.argv[1:])
