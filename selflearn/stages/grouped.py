"""Several tables cut by one group key, carried to `engine.map_groups` as one table, and taken apart again.

`map_groups` hands a function all rows of one group of one dataset. A group's work often needs several
tables (a component's nodes, its edges, its absorption rows): `stack_parts` stacks them with a `part`
column naming each row's table (the columns a part lacks are null) and `unstack_parts` splits a group back
into one pandas frame per part, with the columns that part declares.
"""
from __future__ import annotations

import pandas as pd
import pyarrow as pa


def stack_parts(parts: dict[str, pd.DataFrame], schema: pa.Schema) -> pa.Table:
    """One table of `schema` (which has a `part` column) holding every part's rows."""
    frames = [frame.assign(part=name) for name, frame in parts.items() if len(frame)]
    if not frames:
        return schema.empty_table()
    stacked = pd.concat(frames, ignore_index=True).reindex(columns=schema.names)
    return pa.Table.from_pandas(stacked, schema=schema, preserve_index=False)


def unstack_parts(group: pa.Table, columns: dict[str, list[str]]) -> dict[str, pd.DataFrame]:
    """Each part's rows of one group, with that part's columns (in their Arrow types, nulls as None/NaN)."""
    out = {}
    part = group.column("part").to_numpy(zero_copy_only=False)
    for name, names in columns.items():
        rows = group.filter(pa.array(part == name)).select(names)
        out[name] = rows.to_pandas()
    return out
