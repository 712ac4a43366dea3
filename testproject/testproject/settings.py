"""
Settings for the django-asgiserve demo project.

This project exists to exercise every feature of ``manage.py asgiserve``:

* sync and async views, a template whose edits must show up without a
  restart, a never-ending server-sent-events stream, a slow view, a view
  reporting the worker PID, one echoing proxy/script-name related request
  data and one telling whether the ``worker_started`` signal reached this
  worker (see ``demo/views.py`` and ``demo/apps.py``);
* a plain-ASGI WebSocket echo endpoint routed next to Django in
  ``testproject/asgi.py`` (no Channels needed);
* static files (``demo/static/demo/app.css``) and the admin, backed by a
  tiny ``Note`` model.

Environment variables:

``DJANGO_SECRET_KEY``
    Secret key (an insecure development default is used otherwise).
``ASGISERVE_DEMO_DEBUG``
    ``"0"`` turns DEBUG off; anything else (or unset) leaves it on.
``DJANGO_ALLOWED_HOSTS``
    Comma-separated extra hosts appended to ALLOWED_HOSTS.
``ASGISERVE_BACKEND``
    Server backend used by ``asgiserve`` (``auto``, ``uvicorn``, ``daphne``
    or ``hypercorn``).
``ASGISERVE_DEMO_BROWSER_RELOAD``
    ``"1"`` enables django-browser-reload (if installed) to show that it
    keeps working under ``asgiserve``.
``ASGISERVE_DEMO_CHANNEL_LAYER``
    ``"memory"`` or a ``redis://`` URL: the Channels layer behind the
    ``/ws/chat/`` group consumer (routed when Channels is installed).
``ASGISERVE_DEMO_HOST``
    A name for the machine serving (``/host/`` and the ``/ws/chat/`` consumer
    report it), to tell the hosts of a fleet apart behind a load balancer.
``ASGISERVE_DEMO_DEBUG_TOOLBAR``
    ``"1"`` enables django-debug-toolbar (if installed) for 127.0.0.1.
``ASGISERVE_DEMO_WHITENOISE``
    ``"1"`` serves static files with whitenoise's middleware (if installed),
    from ``STATIC_ROOT`` after ``collectstatic``.
``ASGISERVE_DEMO_SYNC_MIDDLEWARE``
    ``"1"`` adds a sync-only and an async-capable middleware (``demo.middleware``).
``ASGISERVE_DEMO_FAILING_MIDDLEWARE``
    ``"1"`` adds a middleware that raises on ``/fail-in-middleware/``.
``ASGISERVE_DEMO_INSIGHT``
    JSON merged into ``ASGISERVE``, e.g. ``{"LOOP_WARN_MS": 50, "REQUEST_COST": false}``.
"""

import importlib.util
import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY",
    "django-insecure-asgiserve-demo-key-do-not-use-in-production",
)

DEBUG = os.environ.get("ASGISERVE_DEMO_DEBUG", "1") != "0"

ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS += [
    host.strip() for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",") if host.strip()
]

INSTALLED_APPS = [
    # Must come before django.contrib.staticfiles so that its ``runserver``
    # override (ASGISERVE["RUNSERVER"]) takes precedence.
    "django_asgiserve",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Optional: demonstrate compatibility with django-browser-reload.
BROWSER_RELOAD = (
    os.environ.get("ASGISERVE_DEMO_BROWSER_RELOAD") == "1"
    and importlib.util.find_spec("django_browser_reload") is not None
)
if BROWSER_RELOAD:
    INSTALLED_APPS.append("django_browser_reload")
    MIDDLEWARE.append("django_browser_reload.middleware.BrowserReloadMiddleware")

# Optional: the async-safety demo's middleware, one sync-only and one async-capable.
if os.environ.get("ASGISERVE_DEMO_SYNC_MIDDLEWARE") == "1":
    MIDDLEWARE += ["demo.middleware.sync_only_middleware", "demo.middleware.both_ways_middleware"]

# Optional: a middleware that raises on one path (--pdb's tests).
if os.environ.get("ASGISERVE_DEMO_FAILING_MIDDLEWARE") == "1":
    MIDDLEWARE.append("demo.middleware.failing_middleware")

# Optional: django-debug-toolbar, shown to requests from this machine.
DEBUG_TOOLBAR = (
    os.environ.get("ASGISERVE_DEMO_DEBUG_TOOLBAR") == "1"
    and importlib.util.find_spec("debug_toolbar") is not None
)
if DEBUG_TOOLBAR:
    INSTALLED_APPS.append("debug_toolbar")
    MIDDLEWARE.insert(0, "debug_toolbar.middleware.DebugToolbarMiddleware")
    INTERNAL_IPS = ["127.0.0.1"]

# Optional: whitenoise serves STATIC_ROOT (run collectstatic first), right after security.
if (
    os.environ.get("ASGISERVE_DEMO_WHITENOISE") == "1"
    and importlib.util.find_spec("whitenoise") is not None
):
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

# Optional: the traceback of every request that ends in a 500 on the console, with DEBUG off
# too (Django's default logging prints it only with DEBUG on).
if os.environ.get("ASGISERVE_DEMO_LOG_ERRORS") == "1":
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
    }

# Optional: the Channels layer the /ws/chat/ group consumer broadcasts through.
CHANNEL_LAYER = os.environ.get("ASGISERVE_DEMO_CHANNEL_LAYER", "")
if CHANNEL_LAYER == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
elif CHANNEL_LAYER:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [CHANNEL_LAYER]},
        }
    }

ROOT_URLCONF = "testproject.urls"

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

ASGI_APPLICATION = "testproject.asgi.application"
WSGI_APPLICATION = "testproject.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = BASE_DIR / "media"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

ASGISERVE = {
    "BACKEND": os.environ.get("ASGISERVE_BACKEND", "auto"),
    "OPTIONS": {},
    "RUNSERVER": True,
    "LIFESPAN_SIGNALS": True,
}
# Optional: the async-safety settings, as JSON (for example {"REQUEST_COST": false}).
ASGISERVE.update(json.loads(os.environ.get("ASGISERVE_DEMO_INSIGHT", "{}")))
