"""Test helper: seeds moto, fetches what landed, and reads a lake back with DuckDB and pyarrow.

Every command prints one JSON document on stdout; the Rust integration tests assert on it.
Readers are third-party (DuckDB, pyarrow), as Athena would be: nothing here reuses our Rust code.
"""
import argparse
import datetime as dt
import glob
import json
import os
import re
import sys

import boto3
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq


def client(service, endpoint, account=None, region="us-east-1"):
    """A client of the default account (123456789012), or of `account` through a role assumed
    in it (moto gives every account its own data)."""
    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    if account:
        sts = boto3.client("sts", endpoint_url=endpoint, region_name=region, **keys)
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/SecurityHubExportRole",
                                RoleSessionName="seed")["Credentials"]
        keys = {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"]}
    return boto3.client(service, endpoint_url=endpoint, region_name=region, **keys)


def cmd_seed(args):
    """Imports findings; boto3 refuses fields newer than its model, so those are dropped and the
    findings as actually imported are written to `out` (what the export must return)."""
    hub = client("securityhub", args.endpoint, args.account, args.region)
    shape = hub.meta.service_model.shape_for("AwsSecurityFinding")
    known = set(shape.members)
    findings = [json.loads(line) for line in open(args.file, encoding="utf-8") if line.strip()]
    findings = [{k: v for k, v in f.items() if k in known} for f in findings]
    with open(args.out, "w", encoding="utf-8") as out:
        for finding in findings:
            out.write(json.dumps(finding, ensure_ascii=False) + "\n")
    failed = 0
    for start in range(0, len(findings), 100):
        out = hub.batch_import_findings(Findings=findings[start:start + 100])
        failed += out.get("FailedCount", 0)
    print(json.dumps({"imported": len(findings) - failed, "failed": failed}))


def cmd_sources(args):
    """Rows per (source_account_id, source_region), and rows whose finding says it comes from
    another account or Region than the stream that fetched it."""
    files = sorted(glob.glob(os.path.join(args.dir, args.table, "*", "*.parquet")))
    own = "account_uid" if args.table == "findings_ocsf" else "aws_account_id"
    by_source, wrong = {}, 0
    for f in files:
        cols = pq.read_table(f, columns=["source_account_id", "source_region", own,
                                         "region"]).to_pydict()
        for acct, reg, own_acct, own_reg in zip(cols["source_account_id"], cols["source_region"],
                                               cols[own], cols["region"]):
            key = f"{acct}/{reg}"
            by_source[key] = by_source.get(key, 0) + 1
            wrong += (acct, reg) != (own_acct, own_reg)
    print(json.dumps({"by_source": by_source, "wrong_source": wrong}))


def cmd_part_ids(args):
    """The (Id, ProductArn) pairs of one Parquet part, read with pyarrow."""
    cols = pq.read_table(args.file, columns=["id", "product_arn"]).to_pydict()
    print(json.dumps(sorted(f"{i} {p}" for i, p in zip(cols["id"], cols["product_arn"]))))


def cmd_create_bucket(args):
    client("s3", args.endpoint).create_bucket(Bucket=args.bucket)
    print(json.dumps({"created": args.bucket}))


def cmd_download(args):
    s3 = client("s3", args.endpoint)
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix=args.prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            head = s3.head_object(Bucket=args.bucket, Key=key)
            target = os.path.join(args.dir, key[len(args.prefix):].lstrip("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            s3.download_file(args.bucket, key, target)
            objects.append({"key": key, "size": item["Size"], "content_type": head.get("ContentType"),
                            "etag": item["ETag"].strip('"')})
    print(json.dumps({"objects": objects}))


def cmd_uploads(args):
    """Multipart uploads started and neither completed nor aborted."""
    uploads = client("s3", args.endpoint).list_multipart_uploads(Bucket=args.bucket).get("Uploads", [])
    print(json.dumps({"uploads": [u["Key"] for u in uploads]}))


def cmd_exists(args):
    s3 = client("s3", args.endpoint)
    try:
        s3.head_object(Bucket=args.bucket, Key=args.key)
        exists = True
    except s3.exceptions.ClientError as err:
        if err.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
            raise
        exists = False
    print(json.dumps({"exists": exists}))


def cmd_list_parameters(args):
    """Every SSM parameter name, whatever its path."""
    ssm = client("ssm", args.endpoint)
    names = []
    for page in ssm.get_paginator("describe_parameters").paginate():
        names.extend(p["Name"] for p in page["Parameters"])
    print(json.dumps({"names": sorted(names)}))


def cmd_put_parameter(args):
    ssm = client("ssm", args.endpoint)
    ssm.put_parameter(Name=args.name, Value=args.value, Type="String", Overwrite=True)
    print(json.dumps({"value": args.value}))


def cmd_get_parameter(args):
    ssm = client("ssm", args.endpoint)
    try:
        value = ssm.get_parameter(Name=args.name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        value = None
    print(json.dumps({"value": value}))


def parse_ts(text):
    """Python's own reading of an ASFF timestamp, to epoch milliseconds (None if unparseable)."""
    if not isinstance(text, str):
        return None
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:?\d\d)?", text.strip())
    if not m:
        return None
    base, frac, zone = m.groups()
    micros = int(((frac or "") + "000000")[:6])
    zone = "+00:00" if zone in (None, "Z", "z") else zone
    if len(zone) == 5:
        zone = zone[:3] + ":" + zone[3:]
    when = dt.datetime.fromisoformat(base + zone) + dt.timedelta(microseconds=micros)
    return to_ms(when)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def to_ms(when):
    return (when - EPOCH) // dt.timedelta(milliseconds=1)


def cmd_check(args):
    files = sorted(glob.glob(os.path.join(args.dir, "findings", "*", "*.parquet")))
    if args.job:
        files = [f for f in files if os.path.basename(f).startswith(args.job + "-part-")]
    report = {"files": len(files), "rows": 0}
    if not files:
        print(json.dumps(report))
        return
    # DuckDB: Hive partitioning as Athena sees the layout.
    con = duckdb.connect()
    rel = con.read_parquet(files, hive_partitioning=True)
    con.register("lake", rel)
    # A finding is identified by Id and ProductArn (two products may share an Id).
    rows, distinct = con.execute(
        "select count(*), count(distinct (id, product_arn)) from lake").fetchone()
    report["duckdb_rows"] = rows
    report["distinct_ids"] = distinct
    report["export_dates"] = [str(r[0]) for r in con.execute("select distinct export_date from lake").fetchall()]
    report["types"] = dict(con.execute(
        "select column_name, column_type from (describe select * from lake)").fetchall())
    # pyarrow: every file, row by row.
    seen = {}
    by_file = {}
    for f in files:
        table = pq.read_table(f)
        by_file[os.path.basename(f)] = table.num_rows
        cols = table.select(["id", "product_arn", "finding_json", "updated_at", "created_at"]).to_pydict()
        for i, fid in enumerate(cols["id"]):
            seen.setdefault(f"{fid}|{cols['product_arn'][i]}", []).append({
                "json": cols["finding_json"][i],
                "updated_at": cols["updated_at"][i],
                "created_at": cols["created_at"][i],
            })
        report["codec"] = pq.ParquetFile(f).metadata.row_group(0).column(0).compression
    report["rows"] = sum(by_file.values())
    report["rows_by_file"] = by_file
    report["duplicated"] = sorted(k for k, v in seen.items() if len(v) > 1)[:20]
    report["duplicated_count"] = sum(len(v) - 1 for v in seen.values())
    report["pyarrow_schema"] = [f"{field.name}:{field.type}" for field in pq.read_schema(files[0])]
    if args.expect:
        expected = {}
        for line in open(args.expect, encoding="utf-8"):
            if line.strip():
                finding = json.loads(line)
                expected[f"{finding['Id']}|{finding['ProductArn']}"] = finding
        report["missing"] = sorted(set(expected) - set(seen))[:20]
        report["missing_count"] = len(set(expected) - set(seen))
        report["unexpected_count"] = len(set(seen) - set(expected))
        json_mismatch = ts_mismatch = 0
        for fid, rows_of in seen.items():
            want = expected.get(fid)
            if want is None:
                continue
            for row in rows_of:
                if json.loads(row["json"]) != want:
                    json_mismatch += 1
                for col, field in (("updated_at", "UpdatedAt"), ("created_at", "CreatedAt")):
                    got = row[col]
                    got_ms = None if got is None else to_ms(got)
                    if got_ms != parse_ts(want.get(field)):
                        ts_mismatch += 1
        report["json_mismatches"] = json_mismatch
        report["timestamp_mismatches"] = ts_mismatch
        if args.exact:
            # Byte for byte: the expectation file holds each finding exactly as the service sent it.
            texts = {}
            for line in open(args.expect, encoding="utf-8"):
                if line.strip():
                    finding = json.loads(line)
                    texts[f"{finding['Id']}|{finding['ProductArn']}"] = line.rstrip("\n")
            report["byte_mismatches"] = sum(1 for fid, rows_of in seen.items() for row in rows_of
                                            if texts.get(fid) is not None and row["json"] != texts[fid])
    print(json.dumps(report, default=str))


def cmd_check_ocsf(args):
    """The OCSF table read back: DuckDB counts the OCSF identities, pyarrow compares every row's
    finding_json byte for byte and its typed columns with Python's own reading of the document."""
    files = sorted(glob.glob(os.path.join(args.dir, "findings_ocsf", "*", "*.parquet")))
    report = {"files": len(files), "rows": 0}
    if not files:
        print(json.dumps(report))
        return
    con = duckdb.connect()
    con.register("lake", con.read_parquet(files, hive_partitioning=True))
    rows, distinct = con.execute(
        "select count(*), count(distinct (account_uid, finding_uid, product_uid)) from lake").fetchone()
    report.update(duckdb_rows=rows, distinct_ids=distinct, types=dict(con.execute(
        "select column_name, column_type from (describe select * from lake)").fetchall()))
    expected = {}
    for line in open(args.expect, encoding="utf-8"):
        if line.strip():
            text = line.rstrip("\n")
            doc = json.loads(text)
            # A finding is identified by its uid with its product's uid.
            expected[f'{doc["finding_info"]["uid"]}|{doc["metadata"]["product"]["uid"]}'] = text
    seen, byte_mismatch, typed_mismatch, examples = {}, 0, 0, []
    for f in files:
        table = pq.read_table(f).to_pylist()
        for row in table:
            uid = f'{row["finding_uid"]}|{row["product_uid"]}'
            seen[uid] = seen.get(uid, 0) + 1
            text = expected.get(uid)
            if text is None:
                continue
            byte_mismatch += row["finding_json"] != text
            doc = json.loads(text)
            info = doc["finding_info"]
            want = {
                "product_uid": doc["metadata"]["product"]["uid"], "product_name": doc["metadata"]["product"]["name"],
                "class_uid": doc["class_uid"], "class_name": doc["class_name"], "type_uid": doc["type_uid"],
                "title": info["title"], "description": info["desc"], "severity": doc["severity"],
                "severity_id": doc["severity_id"], "status": doc["status"], "status_id": doc["status_id"],
                "activity_name": doc["activity_name"], "compliance_status": doc.get("compliance", {}).get("status"),
                "account_uid": doc["cloud"]["account"]["uid"], "region": doc["cloud"]["region"],
                "resource_types": [r.get("type") for r in doc["resources"]],
                "resource_uids": [r.get("uid") for r in doc["resources"]],
                "vulnerability_uids": [v["cve"]["uid"] for v in doc["vulnerabilities"]] if "vulnerabilities" in doc else None,
            }
            for col in ("created_time", "modified_time", "first_seen_time", "last_seen_time"):
                # Python's own reading of the _dt text, which must agree with the epoch number.
                want[col] = parse_ts(info.get(col + "_dt"))
                assert want[col] == info.get(col), (col, info)
            got = {k: row[k] for k in want}
            for col in ("created_time", "modified_time", "first_seen_time", "last_seen_time"):
                got[col] = None if got[col] is None else to_ms(got[col])
            if got != want:
                typed_mismatch += 1
                if len(examples) < 3:
                    examples.append({k: [got[k], want[k]] for k in want if got[k] != want[k]})
    report["rows"] = sum(seen.values())
    report["duplicated_count"] = sum(n - 1 for n in seen.values())
    report["missing_count"] = len(set(expected) - set(seen))
    report["unexpected_count"] = len(set(seen) - set(expected))
    report["byte_mismatches"] = byte_mismatch
    report["typed_mismatches"] = typed_mismatch
    report["typed_examples"] = examples
    print(json.dumps(report, default=str))


def hive_of(t):
    """The Hive type Athena would need for a Parquet column as pyarrow reads it."""
    if pa.types.is_string(t):
        return "string"
    if pa.types.is_int32(t):
        return "int"
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_timestamp(t) and t.unit == "ms" and t.tz == "UTC":
        return "timestamp"
    if pa.types.is_list(t) and pa.types.is_string(t.value_type):
        return "array<string>"
    if pa.types.is_map(t) and pa.types.is_string(t.key_type) and pa.types.is_string(t.item_type):
        return "map<string,string>"
    return "unsupported:" + str(t)


def ddl_tables(ddl):
    """{table name: [(column, hive type)]} of every CREATE EXTERNAL TABLE, in order."""
    tables = {}
    for statement in ddl.split("CREATE EXTERNAL TABLE")[1:]:
        name = re.match(r" IF NOT EXISTS `\w+`\.`(\w+)`", statement).group(1)
        body = statement.split("PARTITIONED BY", 1)[0].split("STORED AS", 1)[0]
        tables[name] = re.findall(r"^\s*`(\w+)` (\S+) COMMENT", body, re.M)
    return tables


DUCKDB_TYPES = {"string": "VARCHAR", "timestamp": "TIMESTAMPTZ", "bigint": "BIGINT", "int": "INTEGER", "boolean": "BOOLEAN"}


def cmd_ddl_check(args):
    """Reads the lake as Athena would with the shipped DDL: pyarrow schema vs the DDL columns, then
    the DDL's latest view and the README's queries run in DuckDB over the Hive-partitioned tree."""
    ddl = open(args.ddl, encoding="utf-8").read()
    tables = ddl_tables(ddl)
    name = args.table
    columns = tables[name]
    files = sorted(glob.glob(os.path.join(args.dir, name, "*", "*.parquet")))
    run_files = sorted(glob.glob(os.path.join(args.dir, "feed_runs", "*.parquet")))
    mismatched = []
    for f, want in [(f, columns) for f in files] + [(f, tables[name + "_feed_runs"]) for f in run_files]:
        schema = pq.read_schema(f)
        got = [(field.name, hive_of(field.type)) for field in schema]
        if got != want:
            mismatched.append({"file": os.path.basename(f), "got": got})
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute("CREATE SCHEMA securityhub")
    glob_sql = os.path.join(args.dir, name, "*", "*.parquet").replace("'", "''")
    con.execute(f"CREATE VIEW securityhub.{name} AS SELECT * FROM read_parquet('{glob_sql}', hive_partitioning=true)")
    if run_files:
        runs_sql = os.path.join(args.dir, "feed_runs", "*.parquet").replace("'", "''")
        con.execute(f"CREATE VIEW securityhub.{name}_feed_runs AS SELECT * FROM read_parquet('{runs_sql}')")
    else:
        # Athena reads an empty folder as an empty table: the same here, typed as the DDL says.
        cols = ", ".join(f"{name} {DUCKDB_TYPES[kind]}" for name, kind in tables[name + "_feed_runs"])
        con.execute(f"CREATE TABLE securityhub.{name}_feed_runs ({cols})")
    for statement in ddl.split("CREATE OR REPLACE VIEW")[1:]:
        con.execute("CREATE OR REPLACE VIEW" + statement.split(";\n", 1)[0].rstrip().rstrip(";"))
    queries = json.load(open(args.queries, encoding="utf-8"))
    results = {name: [list(map(str, row)) for row in con.execute(sql).fetchall()] for name, sql in queries.items()}
    print(json.dumps({"files": len(files), "ddl_columns": len(columns), "schema_mismatches": mismatched,
                      "results": results,
                      "latest_rows": con.execute(f"select count(*) from securityhub.{name}_latest").fetchone()[0],
                      "archive_rows": con.execute(f"select count(*) from securityhub.{name}_archive").fetchone()[0],
                      "runs": len(run_files),
                      "table_rows": con.execute(f"select count(*) from securityhub.{name}").fetchone()[0]}))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("seed"); p.add_argument("endpoint"); p.add_argument("file"); p.add_argument("out")
    p.add_argument("--account"); p.add_argument("--region", default="us-east-1")
    p.set_defaults(fn=cmd_seed)
    p = sub.add_parser("sources"); p.add_argument("dir"); p.add_argument("--table", default="findings")
    p.set_defaults(fn=cmd_sources)
    p = sub.add_parser("part-ids"); p.add_argument("file"); p.set_defaults(fn=cmd_part_ids)
    p = sub.add_parser("create-bucket"); p.add_argument("endpoint"); p.add_argument("bucket"); p.set_defaults(fn=cmd_create_bucket)
    p = sub.add_parser("download"); p.add_argument("endpoint"); p.add_argument("bucket"); p.add_argument("prefix"); p.add_argument("dir")
    p.set_defaults(fn=cmd_download)
    p = sub.add_parser("uploads"); p.add_argument("endpoint"); p.add_argument("bucket"); p.set_defaults(fn=cmd_uploads)
    p = sub.add_parser("exists"); p.add_argument("endpoint"); p.add_argument("bucket"); p.add_argument("key"); p.set_defaults(fn=cmd_exists)
    p = sub.add_parser("get-parameter"); p.add_argument("endpoint"); p.add_argument("name"); p.set_defaults(fn=cmd_get_parameter)
    p = sub.add_parser("list-parameters"); p.add_argument("endpoint"); p.set_defaults(fn=cmd_list_parameters)
    p = sub.add_parser("put-parameter"); p.add_argument("endpoint"); p.add_argument("name"); p.add_argument("value")
    p.set_defaults(fn=cmd_put_parameter)
    p = sub.add_parser("check"); p.add_argument("dir"); p.add_argument("--expect"); p.add_argument("--job")
    p.add_argument("--exact", action="store_true"); p.set_defaults(fn=cmd_check)
    p = sub.add_parser("ddl-check"); p.add_argument("dir"); p.add_argument("ddl"); p.add_argument("queries")
    p.add_argument("--table", default="findings"); p.set_defaults(fn=cmd_ddl_check)
    p = sub.add_parser("check-ocsf"); p.add_argument("dir"); p.add_argument("--expect", required=True)
    p.set_defaults(fn=cmd_check_ocsf)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
