"""spark-submit entry point: run the whole pipeline with the Spark engine on the session spark-submit built.

    spark-submit --master local[2] selflearn/spark_submit.py --logs sample_logs/logs --out /tmp/out
    spark-submit --master yarn --archives env.tar.gz#env --py-files selflearn.zip selflearn/spark_submit.py \\
        --logs /shared/logs --out /shared/selflearn/run-2026-11-25 --config run.toml

--logs and --out are POSIX paths on a file system the driver and every executor mount at the same place
(executors read the logs and write the curated turns and quarantine under --out; later stages read them there).

Master, memory, executors and every spark.* setting come from spark-submit (--master, --conf, spark-defaults);
this script only adds the defaults the pipeline relies on (UTC session time zone, Arrow transfer) where they
are unset. See docs/SPARK.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, Python puts this file's folder (the package folder itself) first on sys.path, where
# modules such as selflearn/io.py would shadow top-level ones. Only the package-qualified names are wanted.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != _HERE]

import argparse  # noqa: E402
import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import zipfile  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="selflearn/spark_submit.py",
                                     description="Run selflearn on Spark (the session comes from spark-submit).")
    parser.add_argument("--logs", required=True, help="Parquet file, folder (hive partitions) or glob")
    parser.add_argument("--out", required=True, help="output folder on a file system the driver can write")
    parser.add_argument("--config", help="TOML config file; run.engine is forced to spark")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="keep Spark's INFO log (default: warnings and errors only)")
    return parser.parse_args(argv)


def build_session(app_name: str = "selflearn", log_level: str | None = "WARN"):
    """The session spark-submit configured, plus the engine's REQUIRED_CONF where spark-submit left it unset.
    Spark logs at log_level from the start; None leaves Spark's own log configuration (INFO by default)."""
    from selflearn.engines import require_pyspark
    require_pyspark()
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    from selflearn.engines.spark_engine import REQUIRED_CONF, set_jvm_log_level

    if log_level:
        set_jvm_log_level(log_level)

    conf = SparkConf()  # loads spark-submit's --conf / --master / spark-defaults.conf
    builder = SparkSession.builder.appName(conf.get("spark.app.name", app_name))
    for key, value in REQUIRED_CONF.items():
        if not conf.contains(key):
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if log_level:
        spark.sparkContext.setLogLevel(log_level)
    return spark


def unpack_zipped_package() -> None:
    """With --py-files selflearn.zip the driver would import the package from the zip, where the files it
    reads beside its modules (sql/*.sql, package data) are no files. Unpack the zip once and import from
    there instead. Executors keep importing from the zip: what they run reads its package data with
    importlib.resources, which works inside a zip (docs/SPARK.md)."""
    import importlib.util

    spec = importlib.util.find_spec("selflearn")
    origin = Path(spec.origin) if spec and spec.origin else None
    if origin is None or origin.is_file():
        return
    archive = next((p for p in origin.parents if p.is_file() and zipfile.is_zipfile(p)), None)
    if archive is None:
        return
    target = Path(tempfile.mkdtemp(prefix="selflearn-pkg-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(target)
    if not (target / "sql").is_dir() and not (target / "selflearn" / "sql").is_dir():
        raise FileNotFoundError(f"{archive} holds no sql/ folder: zip sql/ beside selflearn/ (docs/SPARK.md)")
    sys.path.insert(0, str(target))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    unpack_zipped_package()  # before the first selflearn import
    from selflearn import pipeline
    from selflearn.config import ConfigError, load_config
    from selflearn.embedders import MissingBackendError
    from selflearn.outdir import OutputBusyError
    from selflearn.privacy import SaltError
    from selflearn.stages.ingest import IngestError

    spark = None
    try:
        cfg = load_config(args.config, {"run.engine": "spark",
                                        "run.progress": False if args.no_progress else None})
        spark = build_session(log_level=None if args.verbose else "WARN")
        result = pipeline.run(args.logs, args.out, cfg, say=lambda m: print(m, flush=True),
                              engine_options={"spark": spark})
    except (ConfigError, IngestError, MissingBackendError, FileNotFoundError, OutputBusyError, SaltError) as exc:
        print(f"selflearn: {exc}", file=sys.stderr)  # a problem the user can fix: one line, no traceback
        return 2
    finally:
        if spark is not None:
            spark.stop()
    counts = result.manifest["counts"]
    print(f"selflearn on spark: {counts['weak_labels']} weak labels, {counts['nodes']} nodes, "
          f"{counts['rewrite_edges']} rewrite edges in {sum(result.timings.values()):.1f}s; outputs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
