"""A LangChain chat model that asks the local OpenAI-compatible server (chat_server.py)
with the `openai` SDK: a tool-calling fake in langchain_core's own terms (`BaseChatModel`),
so OpenInference's LangChain instrumentor sees an ordinary chat model, its tool calls and
the dated model name the server answered with (`response_metadata["model_name"]`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool


def _openai_message(m: BaseMessage) -> dict[str, Any]:
    role = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}[m.type]
    out: dict[str, Any] = {"role": role, "content": m.content}
    if isinstance(m, AIMessage) and m.tool_calls:
        out["content"] = m.content or None
        out["tool_calls"] = [
            {
                "id": tc["id"],
                "type": "function",
                "function": {"name": tc["name"], "arguments": json.dumps(tc["args"])},
            }
            for tc in m.tool_calls
        ]
    if m.type == "tool":
        out["tool_call_id"] = getattr(m, "tool_call_id", "")
    return out


class LocalChatModel(BaseChatModel):
    base_url: str
    model_name: str = "gpt-4o-mini"

    @property
    def _llm_type(self) -> str:
        return "openai-compatible-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "base_url": self.base_url}

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, BaseMessage]:
        specs = [convert_to_openai_tool(t) for t in tools if isinstance(t, BaseTool | dict)]
        return self.bind(tools=specs, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        from openai import OpenAI

        client = OpenAI(base_url=self.base_url, api_key="sk-local-test", max_retries=0)
        response = client.chat.completions.create(
            model=self.model_name,
            messages=[_openai_message(m) for m in messages],  # type: ignore[misc]
            **kwargs,
        )
        choice = response.choices[0].message
        calls = [
            ToolCall(name=tc.function.name, args=json.loads(tc.function.arguments), id=tc.id)
            for tc in choice.tool_calls or []
        ]
        usage = response.usage
        message = AIMessage(
            content=choice.content or "",
            tool_calls=calls,
            response_metadata={"model_name": response.model, "finish_reason": "stop"},
            usage_metadata=UsageMetadata(
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
                total_tokens=usage.total_tokens if usage else 0,
            ),
        )
        llm_output = {"model_name": response.model}
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output=llm_output)
