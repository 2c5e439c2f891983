"""Run every benchmark side by side with its baseline (``make bench``); ``--quick`` for small sizes."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHES = ["bench_gram.py", "bench_train.py", "bench_kkt.py", "bench_cert.py"]

if __name__ == "__main__":
    extra = sys.argv[1:]
    status = 0
    for b in BENCHES:
        print(f"\n######## {b} {' '.join(extra)}", flush=True)
        status |= subprocess.call([sys.executable, str(HERE / b), *extra])
    sys.exit(status)
