"""Progress with rate and time left on the stages that run for minutes (selflearn/progress.py)."""
import pyarrow as pa

from selflearn import progress
from selflearn.engines import get_engine


def test_a_long_loop_shows_its_rate_and_time_left_and_a_short_one_stays_quiet(capsys):
    items = range(progress.MIN_ITEMS + 10)
    assert list(progress.progress_iter(iter(items), len(items), "labels", "utterance", enabled=True)) == list(items)
    shown = capsys.readouterr().err
    assert "labels" in shown and "utterance/s" in shown and "5.01k/5.01k" in shown
    assert list(progress.progress_iter(iter(range(10)), 10, "labels", "utterance", enabled=True)) == list(range(10))
    assert list(progress.progress_iter(iter(items), len(items), "labels", "utterance", enabled=False)) == list(items)
    assert capsys.readouterr().err == ""


def test_batches_run_in_this_process_advance_the_bar_by_their_rows(capsys):
    engine = get_engine("duckdb")
    assert engine.batches_in_process
    table = pa.table({"x": list(range(progress.MIN_ITEMS * 2))})
    double = lambda batch: pa.RecordBatch.from_pydict({"x": pa.compute.multiply(batch.column("x"), 2)})
    with progress.progress_bar(table.num_rows, "rephrase scoring", "pair", enabled=True) as bar:
        out = engine.map_batches(table, progress.counted(double, bar), pa.schema([("x", pa.int64())]))
        assert bar.n == table.num_rows
    assert out.column("x").to_pylist() == [2 * x for x in range(table.num_rows)]
    assert "rephrase scoring" in capsys.readouterr().err
    engine.close()
