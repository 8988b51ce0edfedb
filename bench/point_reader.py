"""Reading a big LAS/LAZ point cloud: the time the LAS reader takes and the memory it holds.

The cloud is generated here (nothing big in the repository): ``--points`` points of format 3 (RGB) on a
wavy 1 km square far from zero (a georeferenced scan's shape), written chunk by chunk with laspy so that
writing takes little memory. Reading runs in a fresh child process, so its peak resident memory is the
reader's alone: it is compared with the size of what the reader gives (28 bytes a point: float32
positions and RGBA colours).

    .venv/bin/python -m bench.point_reader [--points 50000000] [--laz]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import laspy
import numpy as np

from bench.common import write_result

CHUNK = 2_000_000


def write_cloud(path: Path, points: int) -> None:
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.offsets = [500_000.0, 4_000_000.0, 0.0]
    header.scales = [0.001, 0.001, 0.001]
    rng = np.random.default_rng(0)
    with laspy.open(path, mode="w", header=header) as writer:
        for start in range(0, points, CHUNK):
            n = min(CHUNK, points - start)
            record = laspy.ScaleAwarePointRecord.zeros(n, header=header)
            x, y = rng.uniform(0, 1000, n), rng.uniform(0, 1000, n)
            record.x = 500_000.0 + x
            record.y = 4_000_000.0 + y
            record.z = 20 * np.sin(x / 50) * np.cos(y / 70)
            record.red = (x / 1000 * 65535).astype(np.uint16)
            record.green = (y / 1000 * 65535).astype(np.uint16)
            record.blue = np.full(n, 30000, np.uint16)
            writer.write_points(record)


CHILD = """
import json, resource, sys, time
from pathlib import Path
from openrr.assets.job import Job
from openrr.assets.readers import las
from openrr.model.metadata import MetadataKeeper
path = Path(sys.argv[1])
start = time.perf_counter()
source = las.read(Job(lambda line: None), path, path.suffix, MetadataKeeper(None))
seconds = time.perf_counter() - start
(cloud,) = source.points.values()
print(json.dumps({"seconds": seconds, "points": len(cloud.positions),
                  "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50_000_000)
    parser.add_argument("--laz", action="store_true", help="compress the file (LAZ, lazrs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("cloud.laz" if args.laz else "cloud.las")
        start = time.perf_counter()
        write_cloud(path, args.points)
        written = time.perf_counter() - start
        size = path.stat().st_size
        command = [sys.executable, "-c", CHILD, str(path)]
        run = subprocess.run(command, capture_output=True, text=True, check=True)
    measured = json.loads(run.stdout)
    output_bytes = measured["points"] * 28
    result = {
        "points": args.points,
        "format": "LAZ" if args.laz else "LAS",
        "fileBytes": size,
        "writeSeconds": round(written, 1),
        "readSeconds": round(measured["seconds"], 1),
        "pointsPerSecond": round(measured["points"] / measured["seconds"]),
        "outputBytes": output_bytes,
        "peakRssBytes": measured["peakRssBytes"],
        "peakOverOutput": round(measured["peakRssBytes"] / output_bytes, 2),
    }
    print(json.dumps(result, indent=2))
    write_result(f"point_reader_{result['format'].lower()}", result)


if __name__ == "__main__":
    main()
