"""How long an open browser tab takes to show each kind of edit, with django-browser-reload.

For each system (``manage.py asgiserve --backend B`` for every installed backend, and Django's
own ``manage.py runserver``) it copies the demo project, enables django-browser-reload
(``ASGISERVE_DEMO_BROWSER_RELOAD=1``), opens ``/`` in headless Chromium and, for each round,
makes five edits one after the other: a template edit, a view edit, a ``models.py`` edit, an
edit that breaks ``views.py`` (a SyntaxError) and the edit that fixes it. Each figure is the
time from the write to the moment the tab shows the change by itself (the page's text, polled
every 20 ms); "never" when it does not within ``--timeout``. Then, with the tab still open (its
listener's event stream too), it sends Ctrl+C to the server's process group and times its exit.

Before each edit it waits until the tab's listener has its first ping (as a user would have
waited a moment): django-browser-reload takes the version of the code from it.

    python benchmarks/browser_reload.py                      # every backend and runserver
    python benchmarks/browser_reload.py --systems uvicorn,runserver --rounds 5

Needs selenium, /usr/bin/chromium and /usr/bin/chromedriver.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

BACKENDS = ("uvicorn", "daphne", "hypercorn", "granian", "gunicorn")
EDITS = ("template", "view", "models", "break", "fix")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: A round trip from the page to the server (not to django-browser-reload's stream: its
#: streams share one "reload" flag per process, and one a probe left open could take it).
PROBE_SERVER = """
const done = arguments[arguments.length - 1];
fetch("/sync/").then(() => done("answered"), () => done("error"));
"""


def browser(profile: str):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_script_timeout(10)
    return driver


def page_text(driver) -> str:  # type: ignore[no-untyped-def]
    try:
        return str(driver.execute_script("return document.body ? document.body.innerText : ''"))
    except Exception:
        return ""


def shows(driver, text: str, since: float, timeout: float) -> float | None:  # type: ignore[no-untyped-def]
    """Seconds from ``since`` until the tab shows ``text``; None if it does not in time."""
    while text not in page_text(driver):
        if time.perf_counter() - since > timeout:
            return None
        time.sleep(0.02)
    return time.perf_counter() - since


def settle(driver) -> None:  # type: ignore[no-untyped-def]
    """Wait until django-browser-reload's SharedWorker runs, then for a round trip to the
    server: its listener, connected first, has its first ping by then."""
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        with contextlib.suppress(Exception):
            targets = driver.execute_cdp_cmd("Target.getTargets", {})["targetInfos"]
            if any(t["type"] == "shared_worker" for t in targets):
                break
        time.sleep(0.02)
    with contextlib.suppress(Exception):
        driver.execute_async_script(PROBE_SERVER)


def write(path: Path, text: str) -> float:
    """Write ``text`` to ``path`` in one rename; the moment it was written."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)
    return time.perf_counter()


def command(system: str, port: int) -> tuple[list[str], str]:
    manage = [sys.executable, "manage.py"]
    if system == "runserver":
        return [*manage, "runserver", f"{h.HOST}:{port}"], "plain"
    return [*manage, "asgiserve", "--backend", system, f"{h.HOST}:{port}"], "asgiserve"


def run_system(system: str, rounds: int, timeout: float, scratch: Path) -> dict[str, list]:
    root = h.copy_project(h.DEFAULT_PROJECT, scratch / system)
    # Without the demo's own WebSocket and endless event stream: runserver (WSGI) cannot serve
    # those, and a stream of the project's own rightly holds a stopping server's grace period.
    index = root / "demo" / "templates" / "demo" / "index.html"
    blocks = r"{% block scripts %}.*?{% endblock %}"
    write(index, re.sub(blocks, "", index.read_text(), flags=re.DOTALL))
    env = {**h.base_env(), "ASGISERVE_DEMO_BROWSER_RELOAD": "1"}
    h.prepare_project(root, env)
    port = h.free_port()
    cmd, variant = command(system, port)
    env["ASGISERVE_BENCH_VARIANT"] = variant
    server = h.Server(system, cmd, root, env, port, scratch / f"{system}.log")
    results: dict[str, list] = {edit: [] for edit in (*EDITS, "ctrl-c")}
    driver = browser(str(scratch / f"{system}-profile"))
    try:
        with h.running(server):
            if server.wait_ready("/sync/", 60) is None:
                raise SystemExit(f"{system} did not start:\n{server.log_tail()}")
            driver.get(f"http://{h.HOST}:{port}/")
            views = root / "demo" / "views.py"
            models = root / "demo" / "models.py"
            index = root / "demo" / "templates" / "demo" / "index.html"
            views_text = views.read_text().replace(
                'MESSAGE = "hello from testproject"',
                "from demo import models\n\n"
                'MESSAGE = "view 0" + " / " + getattr(models, "MARK", "")',
            )
            write(views, views_text)
            shows(driver, "view 0", time.perf_counter(), 60)

            def message(text: str) -> str:
                return re.sub(r'MESSAGE = "[^"]*"', f'MESSAGE = "{text}"', views_text)

            for n in range(1, rounds + 1):
                template = re.sub(r"<h1>.*</h1>", f"<h1>template {n}</h1>", index.read_text())
                marked = re.sub(
                    r"(MARK = .*\n)?class Note\(",
                    f'MARK = "models {n}"\nclass Note(',
                    models.read_text(),
                )
                steps = [
                    ("template", index, template, f"template {n}"),
                    ("view", views, message(f"view {n}"), f"view {n}"),
                    ("models", models, marked, f"models {n}"),
                    ("break", views, message(f"view {n}") + "\n\ndef broken(:\n", "SyntaxError"),
                    ("fix", views, message(f"fixed {n}"), f"fixed {n}"),
                ]
                for edit, path, text, expected in steps:
                    settle(driver)
                    written = write(path, text)
                    results[edit].append(shows(driver, expected, written, timeout))
            settle(driver)
            assert server.proc is not None
            interrupted = time.perf_counter()
            os.killpg(server.proc.pid, signal.SIGINT)
            server.proc.wait(30)
            results["ctrl-c"].append(time.perf_counter() - interrupted)
    finally:
        driver.quit()
    return results


def cell(values: list) -> str:
    done = [v for v in values if v is not None]
    if not done:
        return "never"
    text = f"{statistics.median(done) * 1000:.0f} ms"
    missed = len(values) - len(done)
    return text + (f" ({missed} never)" if missed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", help="comma-separated: backends and/or runserver")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before 'never'")
    args = parser.parse_args()
    h.install_cleanup()
    systems = args.systems.split(",") if args.systems else [*BACKENDS, "runserver"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="asgiserve-browser-bench-") as scratch:
        if os.environ.get("BENCH_KEEP"):
            scratch = os.environ["BENCH_KEEP"]
        for system in systems:
            print(f"{system} ...", file=sys.stderr, flush=True)
            results = run_system(system, args.rounds, args.timeout, Path(scratch))
            name = "runserver" if system == "runserver" else f"asgiserve {system}"
            rows.append([name, *(cell(results[e]) for e in (*EDITS, "ctrl-c"))])
    headers = ["system", *(f"{e} edit" for e in EDITS[:3]), "break", "fix", "Ctrl+C to exit"]
    print(f"Median write-to-tab time over {args.rounds} rounds ({h.machine_load()}):\n")
    print(h.markdown_table(headers, rows))


if __name__ == "__main__":
    main()
