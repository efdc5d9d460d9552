"""Settings for the Vanilla Game Platform.

One file, driven by environment variables (see the table in README.md). With no
variables at all it runs on SQLite, the local-memory cache, the in-memory channel
layer and the demo model backend. Malformed values stop start-up with a message
that names the variable.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent


def _secret_key() -> str:
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    # Development: generate a key once and keep it in a git-ignored file, so
    # sessions survive restarts without anyone having to configure anything.
    key_file = BASE_DIR / ".secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = secrets.token_urlsafe(50)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# Behind a TLS-terminating proxy (see docs/deploy.md).
HTTPS = env_bool("DJANGO_HTTPS", False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "ninja",
    "allauth",
    "allauth.account",
    "allauth.usersessions",
    "accounts",
    "inference",
    "usage",
    "games",
    "config",
]

# Django's own middleware as subclasses that run their hooks on the event loop
# instead of a thread hop each (config/middleware.py, docs/performance.md).
# Django's deploy checks find the security, CSRF and clickjacking middleware only
# by their own dotted paths; config/checks.py makes those checks for these.
MIDDLEWARE = [
    "config.middleware.SecurityMiddleware",
    "config.middleware.StaticFilesMiddleware",
    "config.middleware.ApiMethodNotAllowedMiddleware",
    "config.middleware.SessionMiddleware",
    "config.middleware.CommonMiddleware",
    "config.middleware.CsrfViewMiddleware",
    "config.middleware.AuthenticationMiddleware",
    "config.middleware.MessageMiddleware",
    "config.middleware.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "config.middleware.UserSessionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]
# Replaced by config/checks.py, which recognizes the subclasses above.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", "sqlite:///db.sqlite3")
if not DATABASE_URL.startswith(("sqlite://", "postgres://", "postgresql://")):
    raise ImproperlyConfigured(
        f"DATABASE_URL: expected sqlite:///PATH or postgres://…, got {DATABASE_URL!r}"
    )
try:
    _db = dj_database_url.parse(DATABASE_URL)
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL: {exc}") from exc
if _db["ENGINE"] == "django.db.backends.sqlite3":
    name = str(_db["NAME"] or "db.sqlite3")
    if name != ":memory:" and not Path(name).is_absolute():
        name = str(BASE_DIR / name)
    _db["NAME"] = name
    _db["OPTIONS"] = {
        # IMMEDIATE takes the write lock when a transaction starts, so two
        # quota reservations never interleave; WAL lets readers go on meanwhile.
        "transaction_mode": "IMMEDIATE",
        "timeout": env_int("SQLITE_BUSY_TIMEOUT_S", 30, minimum=1),
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
        ),
    }
else:
    # Under ASGI every request runs its queries in a thread of its own, so
    # Django's per-thread persistent connections (CONN_MAX_AGE) would open one
    # per request and leak it; psycopg's pool keeps connections across requests.
    _db["CONN_MAX_AGE"] = 0
    _db["OPTIONS"] = {
        "pool": {
            "min_size": env_int("DATABASE_POOL_MIN_SIZE", 2),
            "max_size": env_int("DATABASE_POOL_MAX_SIZE", 20, minimum=1),
            "timeout": env_float("DATABASE_POOL_TIMEOUT_S", 10.0, minimum=0.1),
        }
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and channel layer ----------------------------------------------------

REDIS_URL = env_url("REDIS_URL", None, schemes=("redis", "rediss", "unix"))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "vgp",
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "vgp"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Accounts ------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "accounts:home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"

ACCOUNT_ADAPTER = "accounts.adapters.InviteOnlyAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
}
# Behind the TLS proxy (docs/deploy.md) every request arrives from the proxy's
# address, so the per-address limits above would count the whole site as one
# client: ten bad passwords a minute from anyone would lock everyone out. Trust
# the last address the proxy appends to X-Forwarded-For instead.
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("DJANGO_TRUSTED_PROXY_COUNT", 1 if HTTPS else 0)
USERSESSIONS_TRACK_ACTIVITY = True

# Sessions end after this long without use; every request pushes the end back.
SESSION_IDLE_DAYS = env_int("SESSION_IDLE_DAYS", 14, minimum=1)
SESSION_COOKIE_AGE = SESSION_IDLE_DAYS * 24 * 3600
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

INVITE_DEFAULT_EXPIRES_DAYS = env_int("INVITE_DEFAULT_EXPIRES_DAYS", 7, minimum=1)
INVITES_PER_NEW_USER = env_int("INVITES_PER_NEW_USER", 0)
# The base of links printed by commands, where no request tells the host.
SITE_URL = env_url("SITE_URL", "http://127.0.0.1:8000", schemes=("http", "https")).rstrip("/")

API_TOKEN_LIFETIME_DAYS = env_int("API_TOKEN_LIFETIME_DAYS", 0)  # 0: never expires
GAME_TOKEN_LIFETIME_S = env_int("GAME_TOKEN_LIFETIME_S", 3600, minimum=60)

# --- Inference -----------------------------------------------------------------

ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env_url("ANTHROPIC_BASE_URL", None, schemes=("http", "https"))
# Unset: the backend's own choice, the current Sonnet.
ANTHROPIC_DEFAULT_MODEL = env_str("ANTHROPIC_DEFAULT_MODEL")
_ollama_env = env_str("OLLAMA_URL")
OLLAMA_URLS = [url.rstrip("/") for url in env_list("OLLAMA_URL", ["http://localhost:11434"])]
for _url in OLLAMA_URLS:
    if not _url.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"OLLAMA_URL: expected http(s):// URLs, got {_url!r}")
OLLAMA_URL_CONFIGURED = _ollama_env is not None
# Empty: the first model the Ollama hosts list.
OLLAMA_DEFAULT_MODEL = env_str("OLLAMA_DEFAULT_MODEL", "")
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_url("OPENAI_BASE_URL", None, schemes=("http", "https"))
# Unset: the first model the server lists.
OPENAI_DEFAULT_MODEL = env_str("OPENAI_DEFAULT_MODEL")
INFERENCE_DEFAULT_BACKEND = env_choice(
    "INFERENCE_DEFAULT_BACKEND", ("anthropic", "ollama", "openai", "demo"), None
)
INFERENCE_DEMO_BACKEND = env_bool("INFERENCE_DEMO_BACKEND", True)
INFERENCE_DEMO_TOKENS_PER_S = env_float("INFERENCE_DEMO_TOKENS_PER_S", 40.0)
INFERENCE_TIMEOUT_S = env_float("INFERENCE_TIMEOUT_S", 120.0, minimum=0.1)
INFERENCE_CONNECT_TIMEOUT_S = env_float("INFERENCE_CONNECT_TIMEOUT_S", 5.0, minimum=0.1)
INFERENCE_MAX_RETRIES = env_int("INFERENCE_MAX_RETRIES", 2)
INFERENCE_RETRY_BASE_S = env_float("INFERENCE_RETRY_BASE_S", 0.5)
INFERENCE_RETRY_MAX_S = env_float("INFERENCE_RETRY_MAX_S", 8.0)
INFERENCE_DEFAULT_MAX_TOKENS = env_int("INFERENCE_DEFAULT_MAX_TOKENS", 1024, minimum=1)
INFERENCE_MAX_BODY_BYTES = env_int("INFERENCE_MAX_BODY_BYTES", 1_048_576, minimum=1024)
INFERENCE_MAX_MESSAGES = env_int("INFERENCE_MAX_MESSAGES", 500, minimum=1)
INFERENCE_MAX_CHARS = env_int("INFERENCE_MAX_CHARS", 400_000, minimum=100)
WS_MAX_IN_FLIGHT = env_int("WS_MAX_IN_FLIGHT", 8, minimum=1)
WS_MAX_MESSAGE_BYTES = env_int("WS_MAX_MESSAGE_BYTES", 1_048_576, minimum=1024)
OLLAMA_COOLDOWN_S = env_float("OLLAMA_COOLDOWN_S", 30.0)
OLLAMA_MODELS_CACHE_S = env_float("OLLAMA_MODELS_CACHE_S", 30.0)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(INFERENCE_MAX_BODY_BYTES, 2_621_440)

# --- Usage and limits ------------------------------------------------------------

DEFAULT_TOKEN_LIMIT = env_int("DEFAULT_TOKEN_LIMIT", 1_000_000)
DEFAULT_DAILY_TOKEN_LIMIT = env_int("DEFAULT_DAILY_TOKEN_LIMIT", 100_000)
RATE_LIMIT_PER_MINUTE = env_int("RATE_LIMIT_PER_MINUTE", 60)
USAGE_TIMEZONE = env_str("USAGE_TIMEZONE", "UTC")
# Below this many completion tokens a request is refused rather than shrunk.
QUOTA_MIN_COMPLETION_TOKENS = env_int("QUOTA_MIN_COMPLETION_TOKENS", 16, minimum=1)
# A reservation outlives any request that could hold it; past this it is a
# dead worker's and is released.
QUOTA_RESERVATION_TTL_S = env_int(
    "QUOTA_RESERVATION_TTL_S", int(INFERENCE_TIMEOUT_S * 2 + 60), minimum=10
)
RATELIMIT_USE_CACHE = "default"
RATELIMIT_ENABLE = True

# --- Games -----------------------------------------------------------------------

GAME_MAX_UPLOAD_BYTES = env_int("GAME_MAX_UPLOAD_BYTES", 50 * 1024 * 1024)
GAME_MAX_UNPACKED_BYTES = env_int("GAME_MAX_UNPACKED_BYTES", 200 * 1024 * 1024)
GAME_MAX_FILES = env_int("GAME_MAX_FILES", 2000)
GAME_MAX_COMPRESSION_RATIO = env_int("GAME_MAX_COMPRESSION_RATIO", 100)

# --- Static and media --------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Hashed, compressed names once `collectstatic` has run (production); plain
# files found in the apps before that, so a fresh clone serves without a build.
_MANIFEST = (STATIC_ROOT / "staticfiles.json").exists() and not DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if _MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "/media/"

# --- Misc ----------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # The HTTP client of the anthropic SDK: at INFO it logs a line
        # per upstream request, noise in production and CPU on every request.
        "httpx2": {"level": "WARNING"},
    },
}
