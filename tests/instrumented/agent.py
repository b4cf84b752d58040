"""A small scheduling agent, instrumented by the package a team would use, exporting its
traces with the real OTLP/HTTP exporter.

    python -m tests.instrumented.agent --instrumentation traceloop \
        --llm-url http://127.0.0.1:PORT --otlp http://127.0.0.1:4318 --runs ok,tool_error

It calls the model (the real `openai` SDK against `--llm-url`, an OpenAI-compatible server:
`tests/instrumented/chat_server.py`) with a system prompt and a user message holding an
email and a phone number, runs the tool the model asks for, and calls the model again for
the answer. In the `tool_error` run the tool raises (`BookingUnavailable`) and the run
fails. One JSON line per run on stdout: `{"run", "trace_id", "error"}`.

Instrumentations (each patches globally: one per process):
- `openinference-openai`: OpenInference's openai instrumentor; the agent and tool spans
  from OpenInference's own tracer (`@tracer.agent`, `@tracer.tool`), `using_session`;
- `openinference-langchain`: OpenInference's LangChain instrumentor over a LangChain
  chain, a chat model (`LocalChatModel`, a langchain_core `BaseChatModel` calling the same
  server) and a `@tool`;
- `otel-openai-v2`: OpenTelemetry's openai-v2 instrumentor with content on spans
  (`span_only`); the agent and tool spans from `opentelemetry-util-genai`'s handler;
- `traceloop`: traceloop-sdk in attributes mode (`@workflow`, `@tool`, association
  property `session_id`).

The older flattened OpenLLMetry form cannot come from the installed packages: it is a
payload recorded from an older traceloop-sdk by `record_legacy.py` (beside this file).

Imports of instrumentation packages are inside the functions, so `traceloop` mode also
runs in a virtual environment holding only traceloop-sdk and openai (the recording).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

SERVICE = "scheduler-agent"
VERSION = "2.3.1"
ENVIRONMENT = "production"
SESSION = "conv-7781"
MODEL = "gpt-4o-mini"
EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 0132"
SYSTEM_PROMPT = (
    "You are the scheduling assistant of Northside Clinic. Change appointments with the "
    "tools; never invent a time."
)
USER_REQUEST = (
    f"Hi, this is Jane ({EMAIL}, phone {PHONE}). Please move appointment A-1042 to 14 March at 3pm."
)
TOOL_NAME = "reschedule_appointment"
TOOL_DESCRIPTION = "Move an appointment to a new time."
TOOL_SCHEMA = {
    "type": "object",
    "properties": {
        "appointment_id": {"type": "string", "description": "The appointment, e.g. A-1042."},
        "new_time": {"type": "string", "description": "ISO 8601 local time."},
    },
    "required": ["appointment_id", "new_time"],
}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "parameters": TOOL_SCHEMA},
    }
]
TOOL_ERROR = "the booking API timed out after 30 s"
RUNS = ("ok", "tool_error")


class BookingUnavailable(RuntimeError):
    """The tool's own failure, in the `tool_error` run."""


def resource_attributes() -> dict[str, str]:
    return {
        "service.name": SERVICE,
        "service.version": VERSION,
        "deployment.environment.name": ENVIRONMENT,
    }


def reschedule(appointment_id: str, new_time: str, *, fail: bool) -> dict[str, str]:
    """The tool itself."""
    if fail:
        raise BookingUnavailable(TOOL_ERROR)
    return {"appointment_id": appointment_id, "new_time": new_time, "status": "moved"}


def openai_client(llm_url: str) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=f"{llm_url}/v1", api_key="sk-local-test", max_retries=0)


def chat_loop(client: Any, request: str, call_tool: Callable[..., Any]) -> str:
    """Model, tool, model: the answer's text. `call_tool(**args)` runs the tool."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": request},
    ]
    for _ in range(4):
        response = client.chat.completions.create(
            model=MODEL, messages=messages, tools=OPENAI_TOOLS
        )
        message = response.choices[0].message
        if not message.tool_calls:
            return str(message.content or "")
        messages.append(message.model_dump(exclude_none=True))
        for tc in message.tool_calls:
            result = call_tool(**json.loads(tc.function.arguments))
            messages.append({"role": "tool", "tool_call_id": tc.id, "content": json.dumps(result)})
    raise RuntimeError("the model kept asking for tools")


def _sdk_provider(otlp: str) -> Any:
    """An OpenTelemetry SDK tracer provider exporting each span as it ends (OTLP/HTTP)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create(resource_attributes()))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp}/v1/traces")))
    provider.add_span_processor(root_noter())
    return provider


TRACE_IDS: list[str] = []
"""The trace id of each run, a failed run's too: noted when its root span ends (or, for
traceloop, whose tracer provider is its own, from inside the root span)."""


def root_noter() -> Any:
    """A span processor noting the trace id of each root span as it ends."""
    from opentelemetry.sdk.trace import SpanProcessor

    class RootNoter(SpanProcessor):
        def on_end(self, span: Any) -> None:
            if span.parent is None:
                TRACE_IDS.append(f"{span.context.trace_id:032x}")

    return RootNoter()


def note_trace_id() -> None:
    from opentelemetry import trace

    TRACE_IDS.append(f"{trace.get_current_span().get_span_context().trace_id:032x}")


# -- the instrumentations ------------------------------------------------------------------
# each returns (run one agent invocation, given whether its tool fails; shutdown)

Runner = Callable[[bool], None]


def openinference_openai(llm_url: str, otlp: str) -> tuple[Runner, Callable[[], None]]:
    from openinference.instrumentation import TracerProvider, using_session
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create(resource_attributes()))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp}/v1/traces")))
    provider.add_span_processor(root_noter())
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("scheduler-agent")
    client = openai_client(llm_url)

    def run(fail: bool) -> None:
        @tracer.tool(name=TOOL_NAME, description=TOOL_DESCRIPTION, parameters=TOOL_SCHEMA)
        def reschedule_appointment(appointment_id: str, new_time: str) -> dict[str, str]:
            return reschedule(appointment_id, new_time, fail=fail)

        @tracer.agent(name="scheduler")
        def scheduler(request: str) -> str:
            return chat_loop(client, request, reschedule_appointment)

        with using_session(SESSION):
            scheduler(USER_REQUEST)

    return run, provider.shutdown


def openinference_langchain(llm_url: str, otlp: str) -> tuple[Runner, Callable[[], None]]:
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_core.runnables import RunnableLambda
    from langchain_core.tools import StructuredTool
    from openinference.instrumentation import using_session
    from openinference.instrumentation.langchain import LangChainInstrumentor

    from tests.instrumented.langchain_model import LocalChatModel

    provider = _sdk_provider(otlp)
    LangChainInstrumentor().instrument(tracer_provider=provider)

    def run(fail: bool) -> None:
        def reschedule_appointment(appointment_id: str, new_time: str) -> dict[str, str]:
            """Move an appointment to a new time."""
            return reschedule(appointment_id, new_time, fail=fail)

        tool = StructuredTool.from_function(reschedule_appointment, name=TOOL_NAME)
        model = LocalChatModel(base_url=f"{llm_url}/v1", model_name=MODEL).bind_tools([tool])

        def scheduler(inputs: dict[str, Any]) -> dict[str, Any]:
            messages: list[Any] = [
                SystemMessage(SYSTEM_PROMPT),
                HumanMessage(inputs["request"]),
            ]
            for _ in range(4):
                answer = model.invoke(messages)
                messages.append(answer)
                if not answer.tool_calls:
                    return {"reply": answer.content}
                for tc in answer.tool_calls:
                    messages.append(tool.invoke(tc))
            raise RuntimeError("the model kept asking for tools")

        agent = RunnableLambda(scheduler, name="scheduler")
        with using_session(SESSION):
            agent.invoke({"request": USER_REQUEST})

    return run, provider.shutdown


def otel_openai_v2(llm_url: str, otlp: str) -> tuple[Runner, Callable[[], None]]:
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.util.genai.handler import get_telemetry_handler

    provider = _sdk_provider(otlp)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    handler = get_telemetry_handler(tracer_provider=provider)
    client = openai_client(llm_url)

    def run(fail: bool) -> None:
        def reschedule_appointment(appointment_id: str, new_time: str) -> dict[str, str]:
            with handler.tool(TOOL_NAME, tool_description=TOOL_DESCRIPTION) as inv:
                args = {"appointment_id": appointment_id, "new_time": new_time}
                if inv.should_capture_content_on_span:
                    inv.arguments = args
                result = reschedule(appointment_id, new_time, fail=fail)
                if inv.should_capture_content_on_span:
                    inv.tool_result = result
                return result

        with handler.invoke_local_agent(request_model=MODEL, agent_name="scheduler") as agent:
            agent.conversation_id = SESSION
            chat_loop(client, USER_REQUEST, reschedule_appointment)

    return run, provider.shutdown


def traceloop(llm_url: str, otlp: str, **init: Any) -> tuple[Runner, Callable[[], None]]:
    """traceloop-sdk in attributes mode (`init` adds `Traceloop.init` options)."""
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import tool, workflow
    from traceloop.sdk.instruments import Instruments

    attrs = resource_attributes()
    Traceloop.init(
        app_name=attrs.pop("service.name"),
        api_endpoint=otlp,
        disable_batch=True,
        telemetry_enabled=False,
        resource_attributes=attrs,
        instruments={Instruments.OPENAI},
        **init,
    )
    client = openai_client(llm_url)

    def run(fail: bool) -> None:
        @tool(name=TOOL_NAME)
        def reschedule_appointment(appointment_id: str, new_time: str) -> dict[str, str]:
            return reschedule(appointment_id, new_time, fail=fail)

        @workflow(name="scheduler")
        def scheduler(request: str) -> str:
            note_trace_id()
            return chat_loop(client, request, reschedule_appointment)

        Traceloop.set_association_properties({"session_id": SESSION})
        scheduler(USER_REQUEST)

    def shutdown() -> None:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        if hasattr(provider, "force_flush"):
            provider.force_flush()

    return run, shutdown


INSTRUMENTATIONS: dict[str, Callable[[str, str], tuple[Runner, Callable[[], None]]]] = {
    "openinference-openai": openinference_openai,
    "openinference-langchain": openinference_langchain,
    "otel-openai-v2": otel_openai_v2,
    "traceloop": traceloop,
}


def wait_for_health(url: str, timeout_s: float) -> None:
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within {timeout_s:g} s")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instrumentation", required=True, choices=sorted(INSTRUMENTATIONS))
    parser.add_argument("--llm-url", required=True, help="http://127.0.0.1:PORT (API under /v1)")
    parser.add_argument(
        "--otlp", required=True, help="OTLP/HTTP base URL, e.g. http://127.0.0.1:4318"
    )
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated: ok, tool_error")
    parser.add_argument(
        "--wait-for-listen",
        type=float,
        default=0.0,
        help="seconds to wait, once instrumented, for `evalkeeper listen` at --otlp to answer "
        "GET /health (so the listen process and this one start side by side)",
    )
    args = parser.parse_args(argv)
    run, shutdown = INSTRUMENTATIONS[args.instrumentation](args.llm_url, args.otlp)
    if args.wait_for_listen:
        wait_for_health(f"{args.otlp}/health", args.wait_for_listen)
    for name in args.runs.split(","):
        if name not in RUNS:
            parser.error(f"--runs: {name!r} is not one of {', '.join(RUNS)}")
        error = None
        noted = len(TRACE_IDS)
        try:
            run(name == "tool_error")
        except BookingUnavailable as exc:
            error = f"{type(exc).__name__}: {exc}"
        if len(TRACE_IDS) != noted + 1:
            raise RuntimeError(f"run {name!r} did not note its trace id")
        trace_id = TRACE_IDS[-1]
        print(json.dumps({"run": name, "trace_id": trace_id, "error": error}), flush=True)
    shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
