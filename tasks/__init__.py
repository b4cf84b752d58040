"""Prefect tasks: thin wrappers over the core that declare names, retries and caching."""

from evalkeeper import orchestration_env

orchestration_env.configure()

from tasks import limits as _limits  # noqa: E402  (after the environment's defaults)

# every flow and worker imports this package: judge limits shared through Prefect's global
# concurrency limits whenever EVALKEEPER_JUDGE_SHARED_LIMITS asks (unset: with a server)
_limits.install()
