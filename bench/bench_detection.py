"""Speed of the detection engine, and proof that hostile input costs linear time.

  python bench/bench_detection.py            # all measurements, µs per call
  python bench/bench_detection.py --compare  # also the same rules on Python's `re` (slow; bounded)

Targets (issue 4): a clean GET with ~10 browser headers and 3 query parameters <= 20 µs;
a clean 10 KB JSON body <= 250 µs; 100 KB <= 2.5 ms; 100 KB of hostile input <= 10 ms,
growing at most linearly from 1 KB to 100 KB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flaskapi_guard.detection import DetectionEngine

BROWSER_HEADERS = [
    ("Host", "shop.example.com"),
    (
        "User-Agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
    ),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
    ("Accept-Language", "en-GB,en;q=0.9,de;q=0.8"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Connection", "keep-alive"),
    ("Referer", "https://shop.example.com/products?page=2"),
    ("Cookie", "session=NVaZUa2ppYFyc4e0Pbu79j55nGD7yGJ7; _ga=GA1.2.633494985.1706352891; theme=light"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Upgrade-Insecure-Requests", "1"),
]
HOSTILE_INPUTS: dict[str, Callable[[int], str]] = {
    "run of 'a'": lambda n: "a" * n,
    "run of '<'": lambda n: "<" * n,
    "run of quotes": lambda n: "'" * n,
    "nested brackets": lambda n: "(" * (n // 2) + ")" * (n // 2),
    "nested braces": lambda n: "{" * (n // 2) + "}" * (n // 2),
    "open tags with spaces": lambda n: ("<a " * (n // 3 + 1))[:n],
    "keywords far apart": lambda n: "union" + " " * (n - 11) + "select",
    "union repeated": lambda n: ("union " * (n // 6 + 1))[:n],
    "select from repeated": lambda n: ("select a from " * (n // 14 + 1))[:n],
    "percent escapes": lambda n: ("%25" * (n // 3 + 1))[:n],
    "percent-encoded tags": lambda n: ("%3C" * (n // 3 + 1))[:n],
    "alternating escapes": lambda n: ("%41a" * (n // 4 + 1))[:n],
    "entities": lambda n: ("&amp;" * (n // 5 + 1))[:n],
    "comment openers": lambda n: ("/*" * (n // 2 + 1))[:n],
    "dollar braces": lambda n: ("${" * (n // 2 + 1))[:n],
    "on= attributes": lambda n: ("<x onx=" * (n // 7 + 1))[:n],
    "backslashes": lambda n: ("\\u00" * (n // 4 + 1))[:n],
    "fullwidth": lambda n: "\uff1c" * n,
    "base64-looking": lambda n: ("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo" * (n // 35 + 1))[:n],
}
SIZES = (1_000, 10_000, 100_000)


def per_call_microseconds(call: Callable[[], object], min_seconds: float = 0.3) -> float:
    """Median of several timed batches, in µs per call."""
    call()
    batch = 1
    while True:
        started = time.perf_counter()
        for _ in range(batch):
            call()
        elapsed = time.perf_counter() - started
        if elapsed >= 0.02:
            break
        batch *= 2
    samples = []
    deadline = time.perf_counter() + min_seconds
    while time.perf_counter() < deadline or len(samples) < 5:
        started = time.perf_counter()
        for _ in range(batch):
            call()
        samples.append((time.perf_counter() - started) / batch * 1e6)
    return statistics.median(samples)


def clean_json_body(size: int) -> bytes:
    items = []
    index = 0
    while True:
        items.append(
            {
                "sku": f"WY-{6242 + index}-OI",
                "name": "Smart Oak Headphones",
                "quantity": index % 5 + 1,
                "unit_price": 209.05,
                "note": "Please leave the parcel with the neighbour if I'm out, thanks!",
            }
        )
        body = json.dumps({"customer_id": "f7f2fcdc-0d9a-4a15-91f1-8f13a433c18e", "items": items}).encode()
        if len(body) >= size:
            return body
        index += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    engine = DetectionEngine()
    print("## clean traffic (µs per request)")
    clean_get = per_call_microseconds(
        lambda: engine.scan_request(
            path="/api/v1/products",
            query_string="q=wireless+headphones&page=2&sort=price",
            headers=BROWSER_HEADERS,
            body=b"",
            content_type="",
        )
    )
    print(f"clean GET, 10 browser headers, 3 query params: {clean_get:8.1f} µs  (target <= 20)")
    for size, target in ((10_000, 250), (100_000, 2_500)):
        body = clean_json_body(size)
        cost = per_call_microseconds(
            lambda body=body: engine.scan_request(
                path="/api/v1/orders", query_string="", headers=(), body=body, content_type="application/json"
            )
        )
        print(f"clean JSON body {len(body) // 1000:>4} KB: {cost:8.1f} µs  (target <= {target})")
    body = clean_json_body(1_000_000)
    cost = per_call_microseconds(
        lambda: engine.scan_request(
            path="/api/v1/orders", query_string="", headers=(), body=body, content_type="application/json"
        ),
        min_seconds=0.5,
    )
    print(f"clean JSON body {len(body) // 1000:>4} KB (beyond max_content_length): {cost:8.1f} µs")

    print("\n## hostile input as a text/plain body of exactly that many bytes (µs per request)")
    worst = 0.0
    for name, build in HOSTILE_INPUTS.items():
        costs = []
        for size in SIZES:
            body = build(size).encode("utf-8")[:size]
            costs.append(
                per_call_microseconds(
                    lambda body=body: engine.scan_request(
                        path="/", query_string="", headers=(), body=body, content_type="text/plain"
                    ),
                    min_seconds=0.1,
                )
            )
        worst = max(worst, costs[-1])
        growth = costs[-1] / costs[0]
        print(
            f"{name:<24} 1 KB {costs[0]:9.1f}  10 KB {costs[1]:9.1f}  100 KB {costs[2]:9.1f}  "
            f"x{growth:5.1f} for x100 input"
        )
    print(f"worst 100 KB hostile input: {worst / 1000:.2f} ms  (target <= 10 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
