"""Prefect tasks: thin wrappers over the core that declare names, retries and caching."""

from evalkeeper import orchestration_env

orchestration_env.configure()
