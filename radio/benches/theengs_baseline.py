#!/usr/bin/env python3
"""Baseline for benches/decode.rs: TheengsDecoder (`pip install TheengsDecoder`) decoding the
same iBeacon frames of the shared corpus. Prints decodes per second.

    python3 radio/benches/theengs_baseline.py [seconds]
"""
import importlib.metadata
import json
import pathlib
import sys
import time

import TheengsDecoder

CORPUS = pathlib.Path(__file__).resolve().parents[3] / "testdata/ble-advertisements.json"


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    entries = [e for e in json.loads(CORPUS.read_text()) if e["kind"] == "ibeacon"]
    inputs = [
        json.dumps({
            "manufacturerdata": e["manufacturer_data_hex"],
            "name": e.get("device_name") or "",
            "id": "AA:BB:CC:DD:EE:%02X" % i,
            "rssi": -60,
        })
        for i, e in enumerate(entries)
    ]
    decoded = [TheengsDecoder.decodeBLE(s) for s in inputs]
    assert all(decoded), "Theengs decodes every iBeacon frame"

    decode = TheengsDecoder.decodeBLE
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            for s in inputs:
                decode(s)
        n += 100 * len(inputs)
    elapsed = time.perf_counter() - start
    print(f"TheengsDecoder {importlib.metadata.version('TheengsDecoder')}: {len(inputs)} iBeacon frames, "
          f"{n} decodes in {elapsed:.2f} s = {n / elapsed:,.0f} decodes/s")


if __name__ == "__main__":
    main()
