"""spark-submit jobs are quiet by default: Spark's ~40 INFO lines of start-up are not printed, warnings are."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.extended]
pytest.importorskip("pyspark")

# the session the real entry point builds (selflearn/spark_submit.py), then one tiny action
JOB = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from selflearn.spark_submit import build_session, parse_args
args = parse_args(sys.argv[1:] + ["--logs", "-", "--out", "-"])
spark = build_session(log_level=None if args.verbose else "WARN")
print("rows", spark.range(3).count())
spark.stop()
"""


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17 (apt-get install openjdk-17-jre)")
def test_spark_submit_prints_no_info_lines_by_default(tmp_path):
    job = tmp_path / "job.py"
    job.write_text(JOB)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "SPARK_LOCAL_IP": "127.0.0.1"}
    done = subprocess.run([str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]",
                           "--conf", "spark.ui.enabled=false", str(job)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "rows 3" in done.stdout, done.stderr[-3000:]
    info = [line for line in done.stderr.splitlines() if " INFO " in line]
    assert info == [], info[:5]


def test_verbose_flag_keeps_sparks_own_log_level():
    from selflearn.spark_submit import parse_args

    assert parse_args(["--logs", "l", "--out", "o", "-v"]).verbose
    assert not parse_args(["--logs", "l", "--out", "o"]).verbose
