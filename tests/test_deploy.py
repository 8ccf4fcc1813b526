"""The production path as files: docker-compose.yml runs webhook replicas on PostgreSQL and Redis
behind HTTPS; the image runs as non-root (hadolint checks the Dockerfile in `make lint`)."""

from __future__ import annotations

from ruamel.yaml import YAML

from .conftest import ROOT


def test_compose_runs_replicas_by_webhook_on_postgresql_and_redis() -> None:
    compose = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    bot = services["bot"]
    assert bot["command"] == ["webhook"] and bot["deploy"]["replicas"] >= 2
    env = bot["environment"]
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://") and env["REDIS_URL"].startswith("redis://")
    assert env["WEB_COOKIE_SECURE"] == "true" and env["WEBHOOK_BASE_URL"].startswith("https://")
    assert {"postgres", "redis", "caddy"} <= services.keys()
    assert set(bot["depends_on"]) == {"postgres", "redis"}
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    assert "dynamic a bot 8081" in caddyfile and "/telegram/*" in caddyfile


def test_the_image_runs_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users and all(not u.startswith(("0", "root")) for u in users)
    assert dockerfile.rstrip().endswith('CMD ["run"]')
