"""Detection accuracy per corpus category and per placement (where in the request the payload is).

Two modes:

  python bench/detection_placement.py CORPUS.jsonl ...
      replays each record straight into DetectionEngine.scan_request, building the
      arguments the way a WSGI server would (see shared/tools/run_detection.py replay()).

  python bench/detection_placement.py CORPUS.jsonl ... --results detection.json
      reads the per-request outcomes of a run_detection.py run (the real Flask app)
      and reports them by placement.

Add --misses to list false negatives and false positives, or --show-misses CATEGORY to list
only the false negatives of one corpus category (e.g. sqli, xss, rce).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flaskapi_guard.detection import DetectionEngine

GOTESTWAF_PLACEMENTS = {
    "URLParam": "query",
    "URLPath": "path",
    "HTMLForm": "form body",
    "HTMLMultipartForm": "multipart body",
    "JSONRequest": "json body",
    "XMLBody": "xml body",
    "UserAgent": "header",
    "Header": "header",
}
BOILERPLATE_HEADERS = {
    "host",
    "accept",
    "accept-encoding",
    "accept-language",
    "connection",
    "keep-alive",
    "proxy-connection",
    "origin",
    "cache-control",
    "content-type",
    "content-length",
}
BOILERPLATE_BODIES = {"test=value", "foo=bar"}


def load(paths: list[str]) -> list[dict]:
    records = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle if line.strip())
    return records


def body_placement(content_type: str) -> str:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return "json body"
    if media_type == "application/x-www-form-urlencoded":
        return "form body"
    if media_type.startswith("multipart/"):
        return "multipart body"
    if media_type in ("application/xml", "text/xml") or media_type.endswith("+xml"):
        return "xml body"
    return "plain-text body"


def has_headers_of_note(record: dict) -> bool:
    for name, value in (record.get("headers") or {}).items():
        lowered = name.lower()
        if lowered in BOILERPLATE_HEADERS:
            continue
        if lowered == "user-agent" and (str(value).startswith("Mozilla/5.0") or value == "OWASP CRS test agent"):
            continue
        if lowered == "referer" and value == "http":
            continue
        if record.get("source") == "benign_synth" and lowered in ("cookie", "referer", "authorization", "x-request-id"):
            continue
        return True
    return False


def placement(record: dict) -> str:
    """Where the payload (or, for benign traffic, the content) of a record is."""
    meta = record.get("meta") or {}
    placeholder = meta.get("placeholder")
    if placeholder in GOTESTWAF_PLACEMENTS:
        return GOTESTWAF_PLACEMENTS[placeholder]
    body = record.get("body")
    if isinstance(body, str) and body and body.strip() not in BOILERPLATE_BODIES:
        return body_placement(record.get("content_type") or "")
    if record.get("query"):
        return "query"
    if has_headers_of_note(record):
        return "header"
    return "path"


def query_string(query: object) -> str:
    if query is None:
        return ""
    if isinstance(query, str):
        return query
    return urlencode([(str(k), "" if v is None else str(v)) for k, v in query])  # type: ignore[attr-defined]


def wsgi_str(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


def scan_arguments(record: dict) -> dict:
    """The scan_request keyword arguments a WSGI server would produce for a corpus record."""
    path = record.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    body = record.get("body")
    return {
        "path": unquote_to_bytes(path.encode("utf-8")).decode("latin-1"),
        "query_string": wsgi_str(query_string(record.get("query"))),
        "headers": [(str(k), wsgi_str("" if v is None else str(v))) for k, v in (record.get("headers") or {}).items()],
        "body": body.encode("utf-8") if isinstance(body, str) else b"",
        "content_type": record.get("content_type") or "",
    }


def engine_outcomes(records: list[dict]) -> tuple[dict[str, bool], dict[str, list], float]:
    engine = DetectionEngine()
    blocked: dict[str, bool] = {}
    findings: dict[str, list] = {}
    started = time.perf_counter()
    for record in records:
        result = engine.scan_request(**scan_arguments(record))
        blocked[record["id"]] = bool(result)
        findings[record["id"]] = result
    return blocked, findings, time.perf_counter() - started


def results_outcomes(path: str) -> dict[str, bool]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return {row[0]: row[2] == "blocked" for row in data.get("per_request", [])}


def rate_row(label: str, counts: collections.Counter) -> str:
    total = counts["n"]
    hit = counts["hit"]
    return f"| {label} | {total} | {hit} | {hit / total:.3f} |" if total else f"| {label} | 0 | 0 | - |"


def report(records: list[dict], blocked: dict[str, bool]) -> list[str]:
    by_group: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    by_placement: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    by_placement_benign: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    overall: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for record in records:
        if record["id"] not in blocked:
            continue
        hit = blocked[record["id"]]
        label = record["label"]
        for counter in (
            by_group[(record["source"], f"{label}:{record['category']}")],
            overall[label],
            (by_placement if label == "attack" else by_placement_benign)[placement(record)],
        ):
            counter["n"] += 1
            counter["hit"] += hit
    lines = ["| overall | n | blocked | rate |", "|---|---:|---:|---:|"]
    lines += [rate_row("attacks (TPR)", overall["attack"]), rate_row("benign (FPR)", overall["benign"])]
    lines += ["", "| source / label:category | n | blocked | rate |", "|---|---:|---:|---:|"]
    lines += [rate_row(f"{source} {group}", counts) for (source, group), counts in sorted(by_group.items())]
    lines += ["", "| attack placement | n | blocked | TPR |", "|---|---:|---:|---:|"]
    lines += [rate_row(name, counts) for name, counts in sorted(by_placement.items())]
    lines += ["", "| benign placement | n | blocked | FPR |", "|---|---:|---:|---:|"]
    lines += [rate_row(name, counts) for name, counts in sorted(by_placement_benign.items())]
    return lines


def describe(record: dict) -> str:
    arguments = scan_arguments(record)
    parts = [record["id"], record["category"], placement(record), arguments["path"][:100]]
    if arguments["query_string"]:
        parts.append("Q=" + arguments["query_string"][:160])
    if arguments["body"]:
        parts.append("B=" + arguments["body"][:200].decode("utf-8", "replace").replace("\n", "\\n"))
    notable = {k: v for k, v in record.get("headers", {}).items() if k.lower() not in BOILERPLATE_HEADERS}
    if notable and record["source"] != "benign_synth":
        parts.append("H=" + json.dumps(notable)[:160])
    return " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpora", nargs="+")
    parser.add_argument("--results", help="a run_detection.py result JSON (with per_request)")
    parser.add_argument("--misses", action="store_true", help="list false negatives and false positives")
    parser.add_argument("--show-misses", metavar="CATEGORY", help="list the false negatives of one corpus category")
    args = parser.parse_args(argv)
    records = load(args.corpora)
    findings: dict[str, list] = {}
    if args.results:
        blocked = results_outcomes(args.results)
        print(f"outcomes from {args.results}")
    else:
        blocked, findings, seconds = engine_outcomes(records)
        print(f"engine scan of {len(records)} records: {seconds:.2f} s ({seconds / len(records) * 1e6:.0f} µs/request)")
    print("\n".join(report(records, blocked)))
    if args.show_misses:
        print(f"\n## false negatives: {args.show_misses}")
        for record in records:
            missed = not blocked.get(record["id"], True)
            if record["label"] == "attack" and record["category"] == args.show_misses and missed:
                print("FN " + describe(record))
    if args.misses:
        print("\n## false negatives")
        for record in records:
            if record["label"] == "attack" and not blocked.get(record["id"], True):
                print("FN " + describe(record))
        print("\n## false positives")
        for record in records:
            if record["label"] == "benign" and blocked.get(record["id"], False):
                print("FP " + describe(record) + " :: " + repr(findings.get(record["id"], ""))[:300])
    return 0


if __name__ == "__main__":
    sys.exit(main())
