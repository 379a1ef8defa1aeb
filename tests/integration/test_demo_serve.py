"""`cise demo --serve`: after the demo, the dashboard and the API of the demo network are served on
127.0.0.1 (the acceptance of issue 8), as a separate process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request


def test_demo_serve_shows_the_dashboard_of_the_demo_network() -> None:
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "cise.main", "demo", "--uses", "6", "--cycles", "10",
         "--no-progress", "--serve", "--serve-seconds", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 180
        url = None
        seen = []
        while time.monotonic() < deadline and url is None:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"http://127\.0\.0\.1:\d+/", line)
            url = found.group(0) if found else None
        assert url is not None, "".join(seen)
        with urllib.request.urlopen(url, timeout=30) as page:
            html = page.read().decode()
        assert page.status == 200 and "dashboard.js" in html
        with urllib.request.urlopen(url + "api/assets", timeout=60) as answer:
            assets = json.loads(answer.read())["assets"]
        assert sorted(a["name"] for a in assets) == ["machine-1", "machine-2", "machine-3"]
        assert sum(a["uses"] for a in assets) > 0
        with urllib.request.urlopen(url + "openapi.json", timeout=30) as answer:
            assert json.loads(answer.read())["openapi"].startswith("3.1")
    finally:
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=15)
