"""The healthy scheduling agent as a replay target (`tests.instrumented.replay_target:
scheduler`): the same model loop as agent.py, uninstrumented, against the local model
server named by `INSTRUMENTED_LLM_URL`. It takes a promoted trace's inputs in any of the
shapes the instrumentations record (`{"input": text}`, `{"messages": [...]}`) and answers
`{"reply", "tool_calls": [{"name", "args"}]}`."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from tests.instrumented.agent import chat_loop, openai_client, reschedule

LLM_URL_ENV = "INSTRUMENTED_LLM_URL"


def _request(inputs: dict[str, Any]) -> str:
    if isinstance(inputs.get("input"), str):
        return str(inputs["input"])
    users = [m for m in inputs.get("messages", []) if m.get("role") == "user"]
    if users:
        return str(users[-1].get("content", ""))
    return json.dumps(inputs)


def _run(inputs: dict[str, Any]) -> dict[str, Any]:
    calls: list[dict[str, Any]] = []

    def call_tool(**args: Any) -> dict[str, str]:
        calls.append({"name": "reschedule_appointment", "args": args})
        return reschedule(fail=False, **args)

    reply = chat_loop(openai_client(os.environ[LLM_URL_ENV]), _request(inputs), call_tool)
    return {"reply": reply, "tool_calls": calls}


async def scheduler(inputs: dict[str, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(_run, inputs)
