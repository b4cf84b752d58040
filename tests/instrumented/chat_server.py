"""A scheduling assistant's model, answering on 127.0.0.1 like OpenAI's chat completions.

A real HTTP server (FastAPI under uvicorn in a thread, `evalkeeper.testing.serving`): the
first call of a conversation (no `tool` message yet) is answered with one tool call,
`reschedule_appointment(appointment_id="A-1042", new_time="2026-03-14T15:00")`; a call
that carries the tool's result gets the final answer. Asked for `gpt-4o-mini`, it answers
as the dated `gpt-4o-mini-2024-07-18`, as OpenAI does. Requests are kept in `requests`.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from fastapi import FastAPI, Request

from evalkeeper.testing.serving import ThreadedUvicorn

MODEL = "gpt-4o-mini"
DATED_MODEL = "gpt-4o-mini-2024-07-18"
TOOL = "reschedule_appointment"
TOOL_ARGS = {"appointment_id": "A-1042", "new_time": "2026-03-14T15:00"}
FINAL_ANSWER = "Done: appointment A-1042 is moved to 14 March at 15:00."
DATED = {MODEL: DATED_MODEL}


def answer(body: dict[str, Any], seq: int) -> dict[str, Any]:
    """The completion for one request body (`seq` makes the ids unique)."""
    messages = body.get("messages") or []
    asked = str(body.get("model") or MODEL)
    if any(m.get("role") == "tool" for m in messages if isinstance(m, dict)):
        message: dict[str, Any] = {"role": "assistant", "content": FINAL_ANSWER}
        finish = "stop"
    else:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{seq}",
                    "type": "function",
                    "function": {"name": TOOL, "arguments": json.dumps(TOOL_ARGS)},
                }
            ],
        }
        finish = "tool_calls"
    prompt = sum(len(json.dumps(m)) for m in messages) // 4 + 1
    return {
        "id": f"chatcmpl-{seq}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": DATED.get(asked, asked),
        "system_fingerprint": "fp_local",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": 12, "total_tokens": prompt + 12},
    }


class ChatServer:
    """`start()` returns the base URL (`http://127.0.0.1:PORT`; the API is under `/v1`)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._seq = itertools.count(1)
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> dict[str, Any]:
            body = await request.json()
            self.requests.append(body)
            return answer(body, next(self._seq))

        self._server = ThreadedUvicorn(app, name="local chat completions server")
        self.url = ""

    def start(self) -> str:
        self.url = f"http://127.0.0.1:{self._server.start()}"
        return self.url

    def stop(self) -> None:
        self._server.stop()


if __name__ == "__main__":  # a server for trying the agent by hand
    server = ChatServer()
    print(server.start(), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
