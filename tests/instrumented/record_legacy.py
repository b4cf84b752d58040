"""Record the older flattened OpenLLMetry form from the real, older package.

The installed opentelemetry-instrumentation-openai (traceloop-sdk's) writes
`gen_ai.input.messages`; the flattened form (`gen_ai.prompt.N.*`,
`gen_ai.completion.N.tool_calls.M.*`, `llm.request.type=chat`) comes from its releases
before 0.50, which cannot be installed beside the locked packages. So it was recorded once:
the agent (`agent.py --instrumentation traceloop`) ran in a virtual environment holding
only the older traceloop-sdk and openai, against the local model server, exporting to a
server here that keeps each OTLP/HTTP body as it arrived:

    uv venv -p 3.11 /tmp/legacy
    VIRTUAL_ENV=/tmp/legacy uv pip install "traceloop-sdk==0.40.14" "openai<2"
    uv run python -m tests.instrumented.record_legacy --python /tmp/legacy/bin/python

It writes `payloads/openllmetry-legacy/`: the bodies (`NNN.pb`, in arrival order),
`runs.json` (each run's trace id and error) and `versions.txt`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from fastapi import FastAPI, Request, Response

from evalkeeper.testing.serving import ThreadedUvicorn
from tests.conftest import ROOT
from tests.instrumented.chat_server import ChatServer

OUT = Path(__file__).parent / "payloads" / "openllmetry-legacy"


def main() -> int:
    parser = argparse.ArgumentParser(description="Record the flattened OpenLLMetry payload.")
    parser.add_argument("--python", required=True, help="the older traceloop-sdk's interpreter")
    args = parser.parse_args()
    bodies: list[bytes] = []
    app = FastAPI()

    @app.post("/v1/traces")
    async def traces(request: Request) -> Response:
        bodies.append(await request.body())
        return Response(b"", media_type="application/x-protobuf")

    @app.post("/v1/metrics")
    async def metrics(request: Request) -> Response:
        return Response(b"", media_type="application/x-protobuf")

    sink = ThreadedUvicorn(app, name="recording OTLP server")
    otlp = f"http://127.0.0.1:{sink.start()}"
    chat = ChatServer()
    llm_url = chat.start()
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TRACELOOP_METRICS_ENABLED": "false"}
        proc = subprocess.run(
            [
                args.python,
                "-m",
                "tests.instrumented.agent",
                *("--instrumentation", "traceloop"),
                *("--llm-url", llm_url, "--otlp", otlp),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        sink.stop()
        chat.stop()
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        return 1
    runs = {
        r["run"]: r
        for line in proc.stdout.splitlines()
        if line.startswith("{")
        for r in [json.loads(line)]
    }
    freeze = (
        subprocess.run(
            [args.python, "-m", "pip", "freeze"], capture_output=True, text=True, check=False
        ).stdout
        or subprocess.run(
            ["uv", "pip", "freeze", "--python", args.python], capture_output=True, text=True
        ).stdout
    )
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.pb"):
        old.unlink()
    for i, body in enumerate(bodies):
        (OUT / f"{i:03d}.pb").write_bytes(body)
    (OUT / "runs.json").write_text(json.dumps(runs, indent=2) + "\n")
    keep = ("traceloop-sdk", "opentelemetry-instrumentation-openai", "openai", "opentelemetry-sdk")
    lines = [ln for ln in freeze.splitlines() if ln.split("==")[0].lower() in keep]
    (OUT / "versions.txt").write_text("\n".join(sorted(lines)) + "\n")
    print(f"{len(bodies)} bodies, runs {sorted(runs)} -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
