"""Settings: one pydantic-settings model, read from the environment and ``.env``, passed in."""

from __future__ import annotations

import base64
import functools
import ipaddress
import string
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.hours import WorkingHours

PUBLIC_BOT_API = "https://api.telegram.org"
PUBLIC_WECHAT_API = "https://api.weixin.qq.com"
STAFF_TARGETS = ("telegram", "wecom", "dingtalk", "feishu", "email")
DEFAULT_PORTS = {"http": 80, "https": 443}


@functools.lru_cache(maxsize=1024)  # asked on every web chat request, of a few origins
def canonical_origin(text: str) -> str | None:
    """An origin as browsers send it in ``Origin`` (``https://www.example.com``: the scheme and
    host in lower case, the port only if not the default), or None if ``text`` is not one."""
    text = text.strip().rstrip("/")
    if not text.isascii():
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in DEFAULT_PORTS or not host or parts.path or parts.query or parts.fragment:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    bot_token: SecretStr | None = Field(default=None, description="Token from @BotFather")
    telegram_api_base: str = Field(default=PUBLIC_BOT_API, description="Bot API server base URL")
    database_url: str = Field(default="sqlite+aiosqlite:///data/bot.db")
    flows_dir: Path = Field(default=Path("flows"))
    default_locale: str = Field(default="zh")
    log_level: str = Field(default="INFO")
    watch_flows: bool = Field(default=True, description="Reload flows/ when a file in it changes")
    staff_chat_id: int | None = Field(default=None, description="Staff group: new leads are posted there")
    admin_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Telegram user ids of admins, comma-separated"
    )
    retention_days: int = Field(
        default=30, ge=1, description="Conversations (and unfinished forms) idle this long are deleted"
    )
    state_flush_ms: int = Field(
        default=50, ge=0, description="Write conversation changes behind, every N ms (0: at once)"
    )

    web_enabled: bool = Field(default=True, description="Serve the staff web dashboard")
    web_host: str = Field(default="127.0.0.1", description="Address the dashboard listens on")
    web_port: int = Field(default=8080, ge=0, le=65535, description="Port of the dashboard (0: any free)")
    web_trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Reverse proxies (addresses, networks) whose X-Forwarded-For/-Proto/-Host are believed",
    )
    web_cookie_secure: bool = Field(
        default=False, description="Send the session cookie over HTTPS only (set when behind TLS)"
    )
    webchat_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Sites that may embed the web chat widget (https://www.example.com), comma-separated",
    )
    webchat_rate: float = Field(
        default=1.0, gt=0, description="A web visitor's actions a second, beyond a burst"
    )
    webchat_burst: float = Field(default=10.0, ge=1, description="A web visitor's burst of actions")
    webchat_rate_per_address: float = Field(
        default=20.0, gt=0, description="Web chat requests a second from one address, beyond a burst"
    )
    webchat_burst_per_address: float = Field(
        default=100.0, ge=1, description="Burst of requests from one address"
    )
    webchat_sessions_per_hour: int = Field(default=30, ge=1, description="New web chats per address per hour")
    webchat_max_text: int = Field(
        default=2000, ge=1, le=20000, description="Longest web chat message (characters)"
    )
    timezone: str = Field(default="Asia/Shanghai", description="Staff's time zone (working hours, stats)")
    working_hours: str = Field(
        default="mon-fri 09:00-18:00",
        description="When consultants answer live chats, e.g. 'mon-fri 09:00-18:00; sat 10:00-12:00'",
    )

    staff_notify: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Where new leads are announced, comma-separated: telegram, wecom, dingtalk, feishu, "
        "email (default: telegram when STAFF_CHAT_ID is set)",
    )
    wecom_webhook_url: SecretStr | None = Field(
        default=None, description="WeCom group robot's webhook (…/cgi-bin/webhook/send?key=…)"
    )
    dingtalk_webhook_url: SecretStr | None = Field(
        default=None, description="DingTalk custom robot's webhook (…/robot/send?access_token=…)"
    )
    dingtalk_secret: SecretStr | None = Field(
        default=None, description="DingTalk robot's signing secret (SEC…)"
    )
    feishu_webhook_url: SecretStr | None = Field(
        default=None, description="Feishu/Lark custom bot's webhook (…/open-apis/bot/v2/hook/…)"
    )
    feishu_secret: SecretStr | None = Field(default=None, description="Feishu bot's signing secret")
    smtp_host: str | None = Field(default=None, description="SMTP server for staff e-mail")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port (587 STARTTLS, 465 TLS)")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls, tls (implicit) or none (a relay on this host)"
    )
    smtp_user: str | None = Field(default=None, description="SMTP login")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password")
    smtp_from: str | None = Field(default=None, description="The alerts' From address")
    staff_emails: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Who gets the e-mail alerts, comma-separated"
    )
    web_public_url: str | None = Field(
        default=None, description="The dashboard's public address (https://bot.example.com): links in alerts"
    )

    wechat_token: SecretStr | None = Field(
        default=None, description="WeChat Official Account: the Token of the server settings (服务器配置)"
    )
    wechat_app_id: str | None = Field(default=None, description="WeChat: the AppID (开发者ID)")
    wechat_app_secret: SecretStr | None = Field(default=None, description="WeChat: the AppSecret")
    wechat_aes_key: SecretStr | None = Field(
        default=None, description="WeChat: the EncodingAESKey (43 characters); when set, safe mode (安全模式)"
    )
    wechat_path: str = Field(default="/wechat", description="Path of the WeChat callback on the web server")
    wechat_api_base: str = Field(default=PUBLIC_WECHAT_API, description="WeChat API base URL")
    wechat_reply_within: float = Field(
        default=4.0,
        gt=0,
        lt=5,
        description="Seconds a turn may take for a passive reply (a slower one: customer-service messages)",
    )
    wechat_msgmenu: bool = Field(
        default=False,
        description="Offer each option also as a tappable weixin://bizmsgmenu link (not on test accounts)",
    )

    redis_url: str | None = Field(
        default=None,
        description="redis://host:6379/0: conversations and per-chat locks shared by several replicas",
    )
    redis_prefix: str = Field(default="certbot", description="Prefix of this bot's keys in Redis")
    redis_lock_timeout: float = Field(
        default=30.0, gt=0, description="A chat's lock is released after this many seconds if its holder died"
    )
    webhook_base_url: str | None = Field(
        default=None, description="Public HTTPS address Telegram posts updates to (python -m bot webhook)"
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="Checked against X-Telegram-Bot-Api-Secret-Token on every update"
    )
    webhook_path: str = Field(default="/telegram/webhook", description="Path of the webhook on that address")
    webhook_host: str = Field(default="0.0.0.0", description="Address the webhook server listens on")
    webhook_port: int = Field(default=8081, ge=0, le=65535, description="Port of the webhook server")
    rate_per_chat: float = Field(
        default=1.0, gt=0, description="Messages per second to one chat (bursts of 3 allowed)"
    )
    rate_global: float = Field(default=30.0, gt=0, description="Messages per second in all")
    rate_per_group: float = Field(default=20 / 60, gt=0, description="Messages per second to one group")
    flood_rate: float = Field(
        default=2.0, gt=0, description="A prospect's updates handled per second beyond a burst of 10"
    )

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram allows 1-256 characters: A-Z, a-z, 0-9, _ and -.
        if value is not None:
            text = value.get_secret_value()
            allowed = set(string.ascii_letters + string.digits + "_-")
            if not text or len(text) > 256 or not set(text) <= allowed:
                raise ValueError("WEBHOOK_SECRET: 1–256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("wechat_aes_key")
    @classmethod
    def _aes_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            text = value.get_secret_value()
            try:
                ok = len(text) == 43 and len(base64.b64decode(text + "=", validate=True)) == 32
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(
                    "WECHAT_AES_KEY: the 43 characters of the EncodingAESKey, as WeChat shows it"
                )
        return value

    @field_validator("wechat_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value.startswith(("/chat", "/static")) or value == "/":
            raise ValueError("WECHAT_PATH: a path of its own, such as /wechat")
        return value

    @property
    def wechat_enabled(self) -> bool:
        """WeChat is served when its token is set (the callback); its API needs the AppID and
        AppSecret too."""
        return self.wechat_token is not None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        WorkingHours.parse(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def hours(self) -> WorkingHours:
        return WorkingHours.parse(self.working_hours, self.zone)

    @field_validator("web_trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        for part in value:
            ipaddress.ip_network(part, strict=False)  # ValueError for a typo
        return value

    @field_validator("webchat_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        origins = []
        for given in value:
            origin = canonical_origin(given)
            if origin is None:
                raise ValueError(
                    f"WEBCHAT_ORIGINS: {given.strip()!r} is not an origin such as https://www.example.com"
                    " (a scheme and a host, a port if not the default; no path)"
                )
            origins.append(origin)
        return origins

    @field_validator("wecom_webhook_url", "dingtalk_webhook_url", "feishu_webhook_url")
    @classmethod
    def _webhook(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            parts = urlsplit(value.get_secret_value().strip())
            if parts.scheme not in ("https", "http") or not parts.hostname:
                name = (info.field_name or "webhook").upper()
                raise ValueError(
                    f"{name}: paste the whole webhook address (https://…), as the robot's page shows it"
                )
        return value

    @field_validator("web_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value.strip())
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError(
                    "WEB_PUBLIC_URL: the dashboard's address with its scheme, e.g. https://bot.example.com"
                )
        return value

    @field_validator("staff_notify", "staff_emails", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("staff_notify")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for target in value:
            if target not in STAFF_TARGETS:
                raise ValueError(
                    f"STAFF_NOTIFY: unknown target {target!r} (one of {', '.join(STAFF_TARGETS)})"
                )
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _target_settings(self) -> Settings:
        """Each target listed has what it needs: told at start, not at the first lead."""
        needs = {
            "telegram": ("bot_token", "staff_chat_id"),
            "wecom": ("wecom_webhook_url",),
            "dingtalk": ("dingtalk_webhook_url",),
            "feishu": ("feishu_webhook_url",),
            "email": ("smtp_host", "smtp_from", "staff_emails"),
        }
        if self.smtp_security == "tls" and "smtp_port" not in self.model_fields_set:
            self.smtp_port = 465  # implicit TLS has its own port
        for target in self.staff_notify:
            missing = [name.upper() for name in needs[target] if not getattr(self, name)]
            if missing:
                raise ValueError(f"STAFF_NOTIFY lists {target}: set {', '.join(missing)} too")
        return self

    @property
    def staff_targets(self) -> list[str]:
        """Where alerts go: ``STAFF_NOTIFY``, or the Telegram group when only it is set."""
        if self.staff_notify:
            return list(self.staff_notify)
        return ["telegram"] if self.staff_chat_id is not None else []

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
        return value
