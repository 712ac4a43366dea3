"""URL configuration for the django-asgiserve demo project."""

from demo import views
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", views.index, name="index"),
    path("sync/", views.sync_view, name="sync"),
    path("async/", views.async_view, name="async"),
    path("template/", views.template_view, name="template"),
    path("events/", views.events, name="events"),
    path("slow/", views.slow, name="slow"),
    path("pid/", views.pid, name="pid"),
    path("host/", views.host, name="host"),
    path("headers/", views.headers, name="headers"),
    path("lifespan/", views.lifespan, name="lifespan"),
    path("upload/", views.upload, name="upload"),
    path("body-size/", views.body_size, name="body-size"),
    path("blocking/", views.blocking, name="blocking"),
    path("thread-sleep/", views.thread_sleep, name="thread-sleep"),
    path("queries/", views.queries, name="queries"),
    path("async-queries/", views.async_queries, name="async-queries"),
    path("grow/", views.grow, name="grow"),
    path("secure-cookie/", views.secure_cookie, name="secure-cookie"),
    path("divide/", views.divide, name="divide"),
    path("async-divide/", views.async_divide, name="async-divide"),
    path("admin/", admin.site.urls),
]

if getattr(settings, "BROWSER_RELOAD", False):
    urlpatterns.append(path("__reload__/", include("django_browser_reload.urls")))

if getattr(settings, "DEBUG_TOOLBAR", False):
    urlpatterns.append(path("__debug__/", include("debug_toolbar.urls")))
