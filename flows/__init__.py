"""Prefect flows: orchestration only; every computation lives in the core (`evalkeeper`)."""

from evalkeeper import orchestration_env

orchestration_env.configure()
