"""No test module imports from another test module (shared code is in tests/helpers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.server import REPO

CHECK = REPO / "scripts" / "check_test_imports.py"


def run_check(root: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = (
        "import runpy, sys\n"
        f"check = runpy.run_path({str(CHECK)!r})\n"
        "found = check['offences'](*[check['Path'](a) for a in sys.argv[1:]])\n"
        "print('\\n'.join(found))\n"
        "sys.exit(1 if found else 0)\n"
    )
    args = [str(root)] if root else []
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_no_test_module_imports_another():
    result = subprocess.run([sys.executable, str(CHECK)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_catches_each_form_of_import(tmp_path):
    (tmp_path / "e2e").mkdir()
    offenders = {
        "test_absolute.py": "from tests.e2e.test_reload import write\n",
        "test_relative.py": "from .test_reload import write\n",
        "test_plain.py": "import tests.test_reload\n",
        "test_package.py": "from . import test_reload\n",
    }
    for name, source in offenders.items():
        (tmp_path / "e2e" / name).write_text(source)
    (tmp_path / "e2e" / "test_fine.py").write_text(
        "from tests.helpers.edits import write\nfrom .conftest import DEADLINE\n"
    )
    result = run_check(tmp_path)
    assert result.returncode == 1
    flagged = {Path(line.split(":")[0]).name for line in result.stdout.splitlines()}
    assert flagged == set(offenders), result.stdout
