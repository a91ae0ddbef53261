"""Load SQL statements from `sql/` (one statement per file, shared by every engine).

Statements take numeric parameters as `{{name}}`. Only numbers from the typed config are substituted, so
no user-supplied string is ever spliced into SQL; both DuckDB and Spark parse the result unchanged.
"""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from numbers import Real
from pathlib import Path


def _sql_dir() -> Path:
    """`selflearn/sql` in an installed wheel (pyproject's package-dir maps the repository's `sql/` there), else
    `sql/` beside the package: a source checkout, an editable install, or the zip spark-submit ships."""
    packaged = Path(str(resources.files("selflearn"))) / "sql"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "sql"


SQL_DIR = _sql_dir()
_PARAM = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@lru_cache(maxsize=None)
def _raw(name: str) -> str:
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"SQL statement {name!r} not found at {path}")
    return path.read_text()


def render(name: str, params: dict[str, float] | None = None) -> str:
    params = params or {}

    def substitute(match: re.Match) -> str:
        key = match.group(1)
        if key not in params:
            raise KeyError(f"sql/{name}.sql needs parameter {key!r}")
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"sql/{name}.sql parameter {key!r} must be a number, got {value!r}")
        return repr(float(value)) if isinstance(value, float) else str(int(value))

    return _PARAM.sub(substitute, _raw(name)).strip().rstrip(";")
