#!/usr/bin/env python3
"""DuckDB standing in for Athena over CloudTrail log files: used by the emulator's Athena
executor (moto_server.py, 5.) and by the benchmark (bench-athena-duckdb.py).

* The table: a view with every column of the CloudTrail table docs/athena.md defines (AWS's
  column list plus useridentity.identityprovider), in its order and nesting, one row per record of each log file's
  {"Records": [...]}, requestparameters / responseelements / additionaleventdata kept as JSON
  text (as the JsonSerDe gives them: declared STRING), resources as a list of structs, the
  partition columns of the layout (`org`: account, region, date; `account`: timestamp), and
  "$path", the object's s3:// URI.
* The translation from Athena's dialect is what trail-for's queries need and no more:
  json_extract_scalar -> json_extract_string, cardinality -> len, "DB"."TABLE" e -> the
  view. From Lake's (one
  event data store, requestparameters and responseelements map<string,string>, eventtime a
  timestamp): element_at(e.M, 'k') -> json_extract_string(e.M, '$.k') and
  json_format(CAST(e.M AS JSON)) -> e.M (the view keeps the JSON text where Lake keeps a map),
  to_iso8601(e.eventtime) -> strftime, FROM <store id> e -> the view. DuckDB reads the
  rest as Trino does: struct fields (e.useridentity.arn), filter(e.resources, x -> ...)[1].arn
  (lambdas, 1-based subscripts), LIKE, IN, BETWEEN, CAST(NULL AS varchar).
* Bytes scanned: Athena bills a JSON table by the whole size of every object in the
  partitions a query selects. This sums the objects' sizes over the conditions of the query's
  WHERE that name only partition columns (trail-for writes one condition a line).
"""
import os
import re
import tempfile

PARTITION_COLUMNS = ("account", "region", "date", "timestamp")
# AWSLogs/[o-ORG/]ACCT/CloudTrail/REGION/YYYY/MM/DD/FILE: the partition values of a log file
LAYOUT = re.compile(r"AWSLogs/(?:o-[^/]+/)?(\d{12})/CloudTrail/([^/]+)/(\d{4}/\d{2}/\d{2})/[^/]+\.json(?:\.gz)?$")

_VIEW = """
CREATE OR REPLACE TEMP VIEW ct AS
WITH raw AS (
  SELECT filename, unnest(Records) AS r
  FROM read_json({files}, columns={'Records': 'JSON[]'}, filename=true, format='auto')
)
SELECT
  json_extract_string(r, '$.eventVersion') AS eventversion,
  {'type': json_extract_string(r, '$.userIdentity.type'),
   'principalid': json_extract_string(r, '$.userIdentity.principalId'),
   'arn': json_extract_string(r, '$.userIdentity.arn'),
   'accountid': json_extract_string(r, '$.userIdentity.accountId'),
   'invokedby': json_extract_string(r, '$.userIdentity.invokedBy'),
   'accesskeyid': json_extract_string(r, '$.userIdentity.accessKeyId'),
   'username': json_extract_string(r, '$.userIdentity.userName'),
   'identityprovider': json_extract_string(r, '$.userIdentity.identityProvider'),
   'onbehalfof': {
     'userid': json_extract_string(r, '$.userIdentity.onBehalfOf.userId'),
     'identitystorearn': json_extract_string(r, '$.userIdentity.onBehalfOf.identityStoreArn')},
   'sessioncontext': {
     'attributes': {
       'mfaauthenticated': json_extract_string(r, '$.userIdentity.sessionContext.attributes.mfaAuthenticated'),
       'creationdate': json_extract_string(r, '$.userIdentity.sessionContext.attributes.creationDate')},
     'sessionissuer': {
       'type': json_extract_string(r, '$.userIdentity.sessionContext.sessionIssuer.type'),
       'principalid': json_extract_string(r, '$.userIdentity.sessionContext.sessionIssuer.principalId'),
       'arn': json_extract_string(r, '$.userIdentity.sessionContext.sessionIssuer.arn'),
       'accountid': json_extract_string(r, '$.userIdentity.sessionContext.sessionIssuer.accountId'),
       'username': json_extract_string(r, '$.userIdentity.sessionContext.sessionIssuer.userName')},
     'ec2roledelivery': json_extract_string(r, '$.userIdentity.sessionContext.ec2RoleDelivery'),
     'webidfederationdata': {
       'federatedprovider': json_extract_string(r, '$.userIdentity.sessionContext.webIdFederationData.federatedProvider'),
       'attributes': CAST(json_extract(r, '$.userIdentity.sessionContext.webIdFederationData.attributes')
                          AS MAP(VARCHAR, VARCHAR))}}
  } AS useridentity,
  {eventtime} AS eventtime,
  json_extract_string(r, '$.eventSource') AS eventsource,
  json_extract_string(r, '$.eventName') AS eventname,
  json_extract_string(r, '$.awsRegion') AS awsregion,
  json_extract_string(r, '$.sourceIPAddress') AS sourceipaddress,
  json_extract_string(r, '$.userAgent') AS useragent,
  json_extract_string(r, '$.errorCode') AS errorcode,
  json_extract_string(r, '$.errorMessage') AS errormessage,
  nullif(json_extract(r, '$.requestParameters')::VARCHAR, 'null') AS requestparameters,
  nullif(json_extract(r, '$.responseElements')::VARCHAR, 'null') AS responseelements,
  nullif(json_extract(r, '$.additionalEventData')::VARCHAR, 'null') AS additionaleventdata,
  json_extract_string(r, '$.requestID') AS requestid,
  json_extract_string(r, '$.eventID') AS eventid,
  json_extract_string(r, '$.readOnly') AS readonly,
  list_transform(
    from_json(json_extract(r, '$.resources'), '[{"ARN":"VARCHAR","accountId":"VARCHAR","type":"VARCHAR"}]'),
    x -> {'arn': x.ARN, 'accountid': x.accountId, 'type': x.type}) AS resources,
  json_extract_string(r, '$.eventType') AS eventtype,
  json_extract_string(r, '$.apiVersion') AS apiversion,
  json_extract_string(r, '$.recipientAccountId') AS recipientaccountid,
  nullif(json_extract(r, '$.serviceEventDetails')::VARCHAR, 'null') AS serviceeventdetails,
  json_extract_string(r, '$.sharedEventID') AS sharedeventid,
  json_extract_string(r, '$.vpcEndpointId') AS vpcendpointid,
  json_extract_string(r, '$.vpcEndpointAccountId') AS vpcendpointaccountid,
  json_extract_string(r, '$.eventCategory') AS eventcategory,
  {'reason': json_extract_string(r, '$.addendum.reason'),
   'updatedfields': json_extract_string(r, '$.addendum.updatedFields'),
   'originalrequestid': json_extract_string(r, '$.addendum.originalRequestID'),
   'originaleventid': json_extract_string(r, '$.addendum.originalEventID')} AS addendum,
  json_extract_string(r, '$.sessionCredentialFromConsole') AS sessioncredentialfromconsole,
  nullif(json_extract(r, '$.edgeDeviceDetails')::VARCHAR, 'null') AS edgedevicedetails,
  {'tlsversion': json_extract_string(r, '$.tlsDetails.tlsVersion'),
   'ciphersuite': json_extract_string(r, '$.tlsDetails.cipherSuite'),
   'clientprovidedhostheader': json_extract_string(r, '$.tlsDetails.clientProvidedHostHeader')} AS tlsdetails,
  {partitions},
  f.path AS "$path"
FROM raw JOIN files f ON f.file = raw.filename
"""


def partition_conditions(sql: str) -> list:
    """The lines of the WHERE that name only partition columns (trail-for writes one a line)."""
    out = []
    where = sql.split("\nWHERE ", 1)
    if len(where) < 2:
        return out
    for line in re.split(r"\n  AND ", where[1]):
        cols = set(re.findall(r'e\.("?)([a-z$]+)\1', line))
        names = {c for _, c in cols}
        if names and names <= set(PARTITION_COLUMNS):
            out.append(line)
    return out


def execute(sql: str, objects: list, layout: str, dialect: str = "athena"):
    """Runs `sql` (Athena's dialect) with DuckDB over `objects`, each (s3 uri, (account,
    region, yyyy/mm/dd), bytes): (column names, rows of strings or None, bytes scanned)."""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, (uri, parts, data) in enumerate(objects):
            local = os.path.join(tmp, f"{i:06d}" + (".json.gz" if uri.endswith(".gz") else ".json"))
            with open(local, "wb") as f:
                f.write(data)
            files.append((local, uri, parts, len(data)))
        return execute_files(sql, files, layout, dialect)


def local_files(root: str, bucket: str) -> list:
    """The log files under `root` (a copy of bucket `bucket`) as execute_files takes them."""
    out = []
    for top, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(top, name)
            key = os.path.relpath(path, root).replace(os.sep, "/")
            m = LAYOUT.search(key)
            if m:
                out.append((path, f"s3://{bucket}/{key}", m.groups(), os.path.getsize(path)))
    return out


def translate(sql: str, dialect: str) -> str:
    """trail-for's SQL for Athena (or Lake) as DuckDB reads it over the view `ct`."""
    duck = sql
    if dialect == "lake":
        # Lake keeps requestparameters / responseelements as map<string,string>; the view keeps
        # the JSON text, so a map's value is the JSON field and the whole map the text itself.
        duck = re.sub(r"element_at\((e\.\w+), '(\w+)'\)", r"json_extract_string(\1, '$.\2')", duck)
        duck = re.sub(r"json_format\(CAST\((e\.\w+) AS JSON\)\)", r"\1", duck)
        duck = duck.replace("to_iso8601(e.eventtime)", "strftime(e.eventtime, '%Y-%m-%dT%H:%M:%SZ')")
        duck = re.sub(r"\bFROM [A-Za-z0-9_-]+ e\b", "FROM ct e", duck, count=1)
    duck = re.sub(r"json_extract_scalar\(", "json_extract_string(", duck)
    duck = re.sub(r"\bcardinality\(", "len(", duck)
    duck = re.sub(r'"[^"]+"\."[^"]+"(\s+e\b)', r"ct\1", duck, count=1)
    return duck


def execute_files(sql: str, files: list, layout: str, dialect: str = "athena"):
    """`execute` over local files, each (path, s3 uri, (account, region, yyyy/mm/dd), size).
    dialect `lake` reads Lake's SQL over a Lake-shaped view (eventtime a timestamp)."""
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect()
        con.execute("CREATE TEMP TABLE files (file VARCHAR, path VARCHAR, account VARCHAR, region VARCHAR, "
                    "\"date\" VARCHAR, \"timestamp\" VARCHAR, size BIGINT)")
        rows = []
        for local, uri, (acct, region, day), size in files:
            if layout == "org":
                rows.append((local, uri, acct, region, day, None, size))
            else:
                rows.append((local, uri, None, None, None, day, size))
        if not rows:
            # An empty table still has every column: one empty log file, in no partition.
            local = os.path.join(tmp, "empty.json")
            with open(local, "w") as f:
                f.write('{"Records": []}')
            rows.append((local, None, None, None, None, None, 0))
        con.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        listed = "[" + ", ".join("'" + r[0].replace("'", "''") + "'" for r in rows) + "]"
        # The table has the partition columns of its layout only, as Athena's would.
        partitions = ('f.account AS account, f.region AS region, f."date" AS "date"'
                      if layout == "org" else 'f."timestamp" AS "timestamp"')
        eventtime = ("CAST(json_extract_string(r, '$.eventTime') AS TIMESTAMP)" if dialect == "lake"
                     else "json_extract_string(r, '$.eventTime')")
        con.execute(_VIEW.replace("{files}", listed).replace("{partitions}", partitions)
                    .replace("{eventtime}", eventtime))
        conditions = partition_conditions(sql)
        where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
        scanned = con.execute(f"SELECT coalesce(sum(size), 0) FROM files e{where}").fetchone()[0]
        result = con.execute(translate(sql, dialect))
        columns = [d[0] for d in result.description]
        out = [[None if v is None else str(v) for v in row] for row in result.fetchall()]
        con.close()
    return columns, out, int(scanned)
