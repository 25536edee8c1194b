"""The Store / Recorder contract, run against every backend.

Each backend is a fixture parameter; a new backend (object storage, say) joins by adding
one entry to BACKENDS and must pass every test here unchanged. Tests that need durability
(reopening the store) run only for backends that persist.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pyarrow as pa
import pytest

from asof.eventlog.errors import LogError, UnknownLogError
from asof.eventlog.events import Event, Transaction
from asof.eventlog.hlc import Timestamp
from asof.eventlog.ipc import IpcStore
from asof.eventlog.memory import MemoryStore
from asof.eventlog.recorder import CheckpointRef, Lineage, Recorder, Store


@attrs.frozen
class Backend:
    name: str
    make: Callable[[Path], Store]
    durable: bool


BACKENDS = [
    Backend("memory", lambda _root: MemoryStore(), durable=False),
    Backend("files", IpcStore, durable=True),
]


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param


@pytest.fixture
def store(backend: Backend, tmp_path: Path) -> Iterator[Store]:
    s = backend.make(tmp_path)
    yield s
    s.close()


def rows(n: int, start: int = 0, op: int = 0) -> pa.Table:
    return pa.table(
        {
            "_op": pa.array([op] * n, pa.int8()),
            "_rid": pa.array(range(start, start + n), pa.int64()),
            "v": pa.array([f"v{i}" for i in range(start, start + n)]),
        }
    )


def insert(rec: Recorder, ts: int, n: int = 2, start: int = 0, table: int = 1) -> Transaction:
    return rec.append(
        [Event("rows", table, 0, rows=rows(n, start))], ts=Timestamp(ts), sql=f"insert {start}"
    )


def checkpoint(store: Store, rec: Recorder, txn: Transaction) -> CheckpointRef:
    path = store.new_file_path("checkpoints", ".ckpt")
    data = f"state of {rec.log_id} at {txn.txn_id}".encode()
    path.write_bytes(data)
    ref = CheckpointRef(store.relative(path), txn.txn_id, txn.ts, len(data), zlib.crc32(data))
    rec.add_checkpoint(ref)
    return ref


def ids(txns: object) -> list[int]:
    return [t.txn_id for t in txns]  # type: ignore[attr-defined]


# Logs: create, open, exists, drop


def test_a_new_log_is_empty(store: Store) -> None:
    rec = store.create("a")
    assert store.exists("a") and not store.exists("b")
    assert rec.log_id == "a" and rec.head() is None and rec.history_start() is None
    assert list(rec.transactions()) == [] and rec.lineage == ()
    assert rec.checkpoints() == [] and rec.last_at(10**15) == 0
    assert rec.rows(1, 0) is None


def test_unknown_logs_and_names_taken(store: Store) -> None:
    with pytest.raises(UnknownLogError):
        store.open("nope")
    store.create("a")
    with pytest.raises(LogError):
        store.create("a")
    with pytest.raises(LogError):
        store.fork("a", "a", until=0)
    with pytest.raises(UnknownLogError):
        store.fork("nope", "b", until=0)


def test_dropped_logs_are_gone(store: Store) -> None:
    insert(store.create("a"), 10)
    store.drop("a")
    assert not store.exists("a")
    with pytest.raises(UnknownLogError):
        store.open("a")
    store.drop("a")  # dropping twice is harmless
    assert store.create("a").head() is None  # the name can be used again


# Appending and reading


def test_transactions_get_consecutive_ids_and_keep_what_was_appended(store: Store) -> None:
    rec = store.create("a")
    first = rec.append(
        [Event("create_table", 1, 0, {"name": "t", "cols": ["v"]})], ts=Timestamp(5), sql="DDL"
    )
    second = insert(rec, 10, n=3)
    third = rec.append([Event("note", None, 0, {"x": [1, 2]})], ts=Timestamp(10, 1))
    assert ids([first, second, third]) == [1, 2, 3]
    assert rec.head() == third.info
    got = list(rec.transactions())
    assert ids(got) == [1, 2, 3]
    assert [t.sql for t in got] == ["DDL", "insert 0", None]
    assert [t.ts for t in got] == [Timestamp(5), Timestamp(10), Timestamp(10, 1)]
    assert got[0].events[0].data == {"name": "t", "cols": ["v"]}
    assert got[2].events[0].data == {"x": [1, 2]}
    assert got[1].events[0].rows.select(["_op", "_rid", "v"]).equals(rows(3))


def test_transaction_ranges(store: Store) -> None:
    rec = store.create("a")
    for i in range(6):
        insert(rec, 10 * (i + 1), start=i * 10)  # txns 1..6 at 10..60
    assert ids(rec.transactions(after_txn=2)) == [3, 4, 5, 6]
    assert ids(rec.transactions(until=35)) == [1, 2, 3]
    assert ids(rec.transactions(after_txn=1, until=40)) == [2, 3, 4]
    assert ids(rec.transactions(until=9)) == []
    headers = list(rec.transactions(with_rows=False))
    assert ids(headers) == [1, 2, 3, 4, 5, 6]
    assert all(e.rows is None for t in headers for e in t.events)
    for until, want in [(0, 0), (10, 1), (15, 1), (60, 6), (10**15, 6)]:
        assert rec.last_at(until) == want


def test_rows_of_a_table_version_in_log_order(store: Store) -> None:
    rec = store.create("a")
    insert(rec, 10, n=2, start=0)
    rec.append(
        [
            Event("rows", 1, 0, rows=rows(1, start=5, op=1)),
            Event("rows", 2, 0, rows=rows(4, start=0)),
            Event("rows", 1, 0, rows=rows(1, start=6)),
        ],
        ts=Timestamp(20),
    )
    got = rec.rows(1, 0)
    assert got is not None
    assert got.column_names[:5] == ["_txn", "_ts", "_seq", "_op", "_rid"]
    assert got.column("_txn").to_pylist() == [1, 1, 2, 2]
    assert got.column("_seq").to_pylist() == [0, 0, 0, 2]
    assert got.column("_ts").to_pylist() == [10, 10, 20, 20]
    assert got.column("_rid").to_pylist() == [0, 1, 5, 6]
    assert got.column("_op").to_pylist() == [0, 0, 1, 0]
    only_second = rec.rows(1, 0, after_txn=1)
    assert only_second is not None and only_second.column("_rid").to_pylist() == [5, 6]
    assert rec.rows(1, 0, until=5) is None
    assert rec.rows(1, 1) is None


def test_prepared_events_append_as_the_plain_ones(store: Store) -> None:
    rec = store.create("a")
    event = Event("rows", 1, 0, rows=rows(1000))
    txn = rec.append([rec.prepare(event)], ts=Timestamp(10))
    got = list(rec.transactions())[0].events[0]
    assert txn.txn_id == 1 and got.rows.select(["_op", "_rid", "v"]).equals(rows(1000))


def test_sealing_changes_nothing_a_reader_sees(store: Store) -> None:
    rec = store.create("a")
    for i in range(5):
        insert(rec, 10 * (i + 1), start=i)
    before = [(t.txn_id, t.ts, t.sql) for t in rec.transactions()]
    rows_before = rec.rows(1, 0)
    rec.seal()
    insert(rec, 100, start=50)
    after = [(t.txn_id, t.ts, t.sql) for t in rec.transactions()]
    assert after[:5] == before and after[5][0] == 6
    got = rec.rows(1, 0, until=50)
    assert got is not None and rows_before is not None and got.equals(rows_before)


# Forks


def test_a_fork_shares_history_up_to_the_cut_and_is_independent_after(store: Store) -> None:
    src = store.create("src")
    for i in range(4):
        insert(src, 10 * (i + 1), start=i)  # 10..40
    fork = store.fork("src", "fork", until=25)
    assert fork.lineage == (Lineage("src", 25),)
    assert ids(fork.transactions()) == [1, 2] and fork.head() == list(src.transactions())[1].info
    mine = insert(fork, 50, start=100)
    assert mine.txn_id == 3  # numbering goes on from the inherited head
    insert(src, 60, start=200)
    assert ids(src.transactions()) == [1, 2, 3, 4, 5]
    assert [t.sql for t in fork.transactions()] == ["insert 0", "insert 1", "insert 100"]
    fork_rows = fork.rows(1, 0)
    assert fork_rows is not None and fork_rows.column("_rid").to_pylist() == [0, 1, 1, 2, 100, 101]
    deeper = store.fork("fork", "deeper", until=60)
    assert deeper.lineage == (Lineage("fork", 60), Lineage("src", 25))
    assert ids(deeper.transactions()) == [1, 2, 3]


def test_a_fork_outlives_its_dropped_source(store: Store) -> None:
    src = store.create("src")
    insert(src, 10, start=0)
    ref = checkpoint(store, src, insert(src, 20, start=5))
    fork = store.fork("src", "fork", until=20)
    store.drop("src")
    assert ids(fork.transactions()) == [1, 2]
    assert fork.checkpoints() == [ref]
    assert store.resolve(ref.path).exists()


def test_a_fork_of_an_empty_log(store: Store) -> None:
    store.create("src")
    fork = store.fork("src", "fork", until=100)
    assert fork.head() is None
    assert insert(fork, 200).txn_id == 1


# Checkpoints and compaction


def test_checkpoints_are_listed_oldest_first_and_inherited(store: Store) -> None:
    src = store.create("src")
    a = checkpoint(store, src, insert(src, 10))
    b = checkpoint(store, src, insert(src, 20, start=5))
    assert src.checkpoints() == [a, b] and src.checkpoints(until=15) == [a]
    fork = store.fork("src", "fork", until=15)
    assert fork.checkpoints() == [a]
    c = checkpoint(store, fork, insert(fork, 30, start=9))
    assert fork.checkpoints() == [a, c] and src.checkpoints() == [a, b]


def test_compaction_folds_history_into_a_checkpoint(store: Store) -> None:
    rec = store.create("a")
    for i in range(3):
        insert(rec, 10 * (i + 1), start=i * 10)
    fold = list(rec.transactions())[1]
    checkpoint(store, rec, fold)
    for i in range(3, 5):
        insert(rec, 10 * (i + 1), start=i * 10)
    later = [(t.txn_id, t.sql) for t in rec.transactions(after_txn=2)]
    report = store.compact("a", fold_txn=2, fold_ts=fold.ts)
    assert report.rows_dropped == 4  # the two folded transactions' rows
    assert rec.history_start() == fold.info
    assert [(t.txn_id, t.sql) for t in rec.transactions()] == later
    assert rec.head() is not None and rec.head().txn_id == 5
    assert insert(rec, 100).txn_id == 6
    with pytest.raises(LogError):  # a fold needs a checkpoint at that transaction
        store.compact("a", fold_txn=4)


def test_shared_file_paths_round_trip(store: Store) -> None:
    path = store.new_file_path("checkpoints", ".duckdb")
    assert path.suffix == ".duckdb" and not path.exists()
    assert path != store.new_file_path("checkpoints", ".duckdb")
    assert store.resolve(store.relative(path)) == path


# Durability


def test_everything_survives_reopening(backend: Backend, tmp_path: Path) -> None:
    if not backend.durable:
        pytest.skip(f"the {backend.name} backend does not persist")
    store = backend.make(tmp_path)
    src = store.create("src")
    for i in range(3):
        insert(src, 10 * (i + 1), start=i)
    ref = checkpoint(store, src, list(src.transactions())[-1])
    store.fork("src", "fork", until=20)
    insert(store.open("fork"), 40, start=9)
    want = {
        n: [(t.txn_id, t.ts, t.sql) for t in store.open(n).transactions()] for n in ("src", "fork")
    }
    store.close()
    again = backend.make(tmp_path)
    try:
        for name, txns in want.items():
            assert [(t.txn_id, t.ts, t.sql) for t in again.open(name).transactions()] == txns
        assert again.open("src").checkpoints() == [ref]
        assert again.open("fork").lineage == (Lineage("src", 20),)
    finally:
        again.close()
