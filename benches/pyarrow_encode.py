"""The encode benchmark's Python side: the same work as `benches/encode.rs`, done with pyarrow.

From GetFindings page bytes to ZSTD Parquet bytes, with the exporter's 26-column schema given
explicitly: the typed columns extracted by the same rules (Region from a Region-shaped
ProductArn, numeric-string severities, non-string ProductFields values as JSON text, timestamps
to UTC milliseconds), the finding's JSON text, the job columns. Prints the best findings/s of
five runs. Usage: pyarrow_encode.py FINDINGS.ndjson
"""
import datetime as dt
import io
import json
import re
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq

REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
UTC = dt.timezone.utc
STRING_FIELDS = [
    ("id", "Id"), ("product_arn", "ProductArn"), ("product_name", "ProductName"),
    ("company_name", "CompanyName"), ("generator_id", "GeneratorId"),
    ("aws_account_id", "AwsAccountId"),
]
TIME_FIELDS = [
    ("created_at", "CreatedAt"), ("updated_at", "UpdatedAt"),
    ("first_observed_at", "FirstObservedAt"), ("last_observed_at", "LastObservedAt"),
]
TS = pa.timestamp("ms", tz="UTC")
SCHEMA = pa.schema(
    [(name, pa.string()) for name, _ in STRING_FIELDS]
    + [("region", pa.string()), ("types", pa.list_(pa.string())), ("title", pa.string()),
       ("description", pa.string()), ("severity_label", pa.string()),
       ("severity_normalized", pa.int32()), ("compliance_status", pa.string()),
       ("workflow_status", pa.string()), ("record_state", pa.string())]
    + [(name, TS) for name, _ in TIME_FIELDS]
    + [("resource_types", pa.list_(pa.string())), ("resource_ids", pa.list_(pa.string())),
       ("product_fields", pa.map_(pa.string(), pa.string())),
       ("user_defined_fields", pa.map_(pa.string(), pa.string())),
       ("finding_json", pa.string()), ("export_job_id", pa.string()), ("exported_at", TS),
       ("source_account_id", pa.string()), ("source_region", pa.string())]
)


def text(value):
    return value if isinstance(value, str) else None


def millis(value):
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def region(finding):
    if isinstance(finding.get("Region"), str):
        return finding["Region"]
    parts = str(finding.get("ProductArn", "")).split(":")
    return parts[3] if len(parts) > 3 and REGION.match(parts[3]) else None


def severity(finding):
    value = (finding.get("Severity") or {}).get("Normalized")
    try:
        return round(float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def string_map(value):
    if not isinstance(value, dict):
        return None
    return [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in value.items()]


def encode(pages, job="bench"):
    columns = {field.name: [] for field in SCHEMA}
    for body in pages:
        fetched = int(time.time() * 1000)
        for f in json.loads(body)["Findings"]:
            for name, key in STRING_FIELDS:
                columns[name].append(text(f.get(key)))
            columns["region"].append(region(f))
            types = f.get("Types")
            columns["types"].append([t for t in types] if isinstance(types, list) else None)
            columns["title"].append(text(f.get("Title")))
            columns["description"].append(text(f.get("Description")))
            columns["severity_label"].append(text((f.get("Severity") or {}).get("Label")))
            columns["severity_normalized"].append(severity(f))
            columns["compliance_status"].append(text((f.get("Compliance") or {}).get("Status")))
            columns["workflow_status"].append(text((f.get("Workflow") or {}).get("Status")))
            columns["record_state"].append(text(f.get("RecordState")))
            for name, key in TIME_FIELDS:
                columns[name].append(millis(f.get(key)))
            resources = f.get("Resources") or []
            columns["resource_types"].append([text(r.get("Type")) for r in resources])
            columns["resource_ids"].append([text(r.get("Id")) for r in resources])
            columns["product_fields"].append(string_map(f.get("ProductFields")))
            columns["user_defined_fields"].append(string_map(f.get("UserDefinedFields")))
            columns["finding_json"].append(json.dumps(f, ensure_ascii=False))
            columns["export_job_id"].append(job)
            columns["exported_at"].append(fetched)
            columns["source_account_id"].append("123456789012")
            columns["source_region"].append("us-east-1")
    table = pa.Table.from_pydict(columns, schema=SCHEMA)
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", row_group_size=20_000)
    return table.num_rows, out.getvalue()


def main():
    findings = [line.strip() for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
    pages = [
        ('{"Findings":[' + ",".join(findings[i:i + 100]) + f'],"NextToken":"t{i}"}}').encode()
        for i in range(0, len(findings), 100)
    ]
    best = 0.0
    for _ in range(5):
        started = time.perf_counter()
        rows, _ = encode(pages)
        best = max(best, rows / (time.perf_counter() - started))
    print(f"{best:.0f}")


if __name__ == "__main__":
    main()
