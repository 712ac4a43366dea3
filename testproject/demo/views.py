import asyncio
import hashlib
import math
import os
import time

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from demo.apps import LIFESPAN

# Returned by the sync and async views. Benchmarks and tests edit this line to
# measure how quickly a code change is picked up by the reloader.
MESSAGE = "hello from testproject"

MAX_SLOW_SECONDS = 30.0
UPLOAD_READ_SIZE = 1024 * 1024
MAX_GROW_MB = 100

#: What ``grow`` keeps, for the life of the process (a leak, for --max-worker-memory).
HELD = []


def index(request):
    return render(request, "demo/index.html", {"message": MESSAGE})


def sync_view(request):
    return HttpResponse(MESSAGE, content_type="text/plain")


async def async_view(request):
    await asyncio.sleep(0)
    return HttpResponse(MESSAGE, content_type="text/plain")


def template_view(request):
    return render(request, "demo/fragment.html")


async def _tick_stream():
    n = 0
    while True:
        yield f"data: tick {n}\n\n"
        n += 1
        await asyncio.sleep(1)


async def events(request):
    """Server-sent events: one "tick N" event per second, forever."""
    response = StreamingHttpResponse(_tick_stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def slow(request):
    """Sleep ?seconds=X (default 2, at most 30) before answering."""
    try:
        seconds = float(request.GET.get("seconds", 2))
    except ValueError:
        seconds = 2.0
    if not math.isfinite(seconds):
        seconds = 2.0
    seconds = min(max(seconds, 0.0), MAX_SLOW_SECONDS)
    await asyncio.sleep(seconds)
    return HttpResponse("slow done", content_type="text/plain")


def pid(request):
    return HttpResponse(str(os.getpid()), content_type="text/plain")


def host(request):
    """Which host (``ASGISERVE_DEMO_HOST``, empty when unset) and worker served this request."""
    return JsonResponse({"host": os.environ.get("ASGISERVE_DEMO_HOST", ""), "pid": os.getpid()})


def headers(request):
    return JsonResponse(
        {
            "scheme": request.scheme,
            "is_secure": request.is_secure(),
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "host": request.get_host(),
            "path": request.path,
            "path_info": request.path_info,
            "script_name": request.META.get("SCRIPT_NAME"),
            "reverse_sync": reverse("sync"),
        }
    )


def lifespan(request):
    """Whether this worker's ``worker_started`` receiver ran (see ``demo/apps.py``)."""
    return JsonResponse({**LIFESPAN, "pid": os.getpid()})


@csrf_exempt
def upload(request):
    """Size and SHA-256 of an upload: the multipart file field ``f`` if there is one, else the
    raw body, read in chunks (``?pause=S`` sleeps S seconds, at most 30, after the first one)."""
    digest = hashlib.sha256()
    size = 0
    if request.content_type == "multipart/form-data":
        for chunk in request.FILES["f"].chunks():
            digest.update(chunk)
            size += len(chunk)
        return JsonResponse({"size": size, "sha256": digest.hexdigest()})
    pause = min(float(request.GET.get("pause", 0)), MAX_SLOW_SECONDS)
    while chunk := request.read(UPLOAD_READ_SIZE):
        digest.update(chunk)
        if size == 0 and pause > 0:
            time.sleep(pause)
        size += len(chunk)
    return JsonResponse({"size": size, "sha256": digest.hexdigest()})


@csrf_exempt
def body_size(request):
    """The size of ``request.body``: over DATA_UPLOAD_MAX_MEMORY_SIZE, Django answers 400."""
    return JsonResponse({"size": len(request.body)})


async def blocking(request):
    """An async view that blocks its event loop with time.sleep (?seconds=, default 0.3)."""
    seconds = min(float(request.GET.get("seconds", 0.3)), MAX_SLOW_SECONDS)
    time.sleep(seconds)  # blocks the loop: what the watchdog reports
    return HttpResponse("slept", content_type="text/plain")


def thread_sleep(request):
    """A sync view that sleeps in its thread: the event loop keeps running."""
    time.sleep(min(float(request.GET.get("seconds", 0.3)), MAX_SLOW_SECONDS))
    return HttpResponse("slept", content_type="text/plain")


def _run_queries(count, pause=0.0):
    from django.db import connection

    with connection.cursor() as cursor:
        for n in range(count):
            cursor.execute("SELECT %s", [n])
            cursor.fetchone()
            if pause:
                time.sleep(pause)  # in the thread: overlaps concurrent requests
    return count


def queries(request):
    """Run ?n= database queries (default 3), pausing ?pause= seconds after each."""
    count = _run_queries(int(request.GET.get("n", 3)), float(request.GET.get("pause", 0)))
    return HttpResponse(f"{count} queries", content_type="text/plain")


async def async_queries(request):
    """Run ?n= queries from an async view: via sync_to_async, and one through the async ORM
    when ?orm=1 (Note.objects.acount())."""
    from asgiref.sync import sync_to_async

    from demo.models import Note

    count = int(request.GET.get("n", 3))
    pause = float(request.GET.get("pause", 0))
    if request.GET.get("orm") == "1":
        await Note.objects.acount()
        count -= 1
    for _ in range(count):
        await sync_to_async(_run_queries)(1)
        await asyncio.sleep(pause)
    return HttpResponse("done", content_type="text/plain")


def grow(request):
    """Keep ?mb= more MiB (default 20, at most 100) for the life of this process, as a leak
    would, then pause ?pause= seconds (default 0.1); the pid and the MiB kept so far."""
    megabytes = min(max(int(request.GET.get("mb", 20)), 0), MAX_GROW_MB)
    # Written, not just reserved: every page becomes resident.
    HELD.append(b"\x01" * (megabytes * 1024 * 1024))
    time.sleep(min(float(request.GET.get("pause", 0.1)), MAX_SLOW_SECONDS))
    held = sum(len(chunk) for chunk in HELD) // (1024 * 1024)
    return JsonResponse({"pid": os.getpid(), "held_mb": held})


def secure_cookie(request):
    """Whether the browser sent back the ``Secure`` cookie this view sets (it keeps one only
    from an HTTPS page it trusts)."""
    seen = request.COOKIES.get("secure_probe", "none")
    response = HttpResponse(f"secure cookie: {seen}", content_type="text/plain")
    response.set_cookie("secure_probe", "kept", secure=True, samesite="Lax")
    return response


def divide(request):
    """1 divided by ?by= (default 0): an unhandled ZeroDivisionError, for --pdb."""
    divisor = int(request.GET.get("by", 0))
    return HttpResponse(str(1 / divisor), content_type="text/plain")


async def async_divide(request):
    """``divide`` as an async view (it fails on the event loop)."""
    await asyncio.sleep(0)
    divisor = int(request.GET.get("by", 0))
    return HttpResponse(str(1 / divisor), content_type="text/plain")
