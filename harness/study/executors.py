"""Executors of the study grid: who runs the cells. The study itself does not change with them.

An executor has `run(fn, cells)`, yielding `(cell, record, error)` for every cell as it finishes
(in any order; exactly one of record and error is None), and is a context manager. `fn(cell, refs)`
is `harness.study.cells.run_cell_task`, a module-level function of one JSON-able cell, so it can
travel; `refs` is the reference cache of the process the cell runs in (`cells.reference_cache`),
which the executor keeps: one per run in-process, one per worker (Dask worker state) on Dask.
The caller stores each record as it arrives: workers never write to the output folder, so a worker
on another machine needs no shared file system, and a worker lost mid-cell leaves nothing behind.

* `InProcessExecutor`: one cell after another in this process (the default).
* `DaskExecutor`: Dask distributed. `workers=N` starts an embedded `LocalCluster` on this machine
  (N processes, one thread each); `scheduler="tcp://host:8786"` uses a running cluster (`dask
  scheduler` / `dask worker --nthreads 1`). Each cell is one task (key `lora-cell-<id>`); tasks
  whose worker dies are retried on another one by the scheduler (`distributed.scheduler.allowed-failures`),
  and a cell that keeps killing workers comes back as an error and is left missing. Larger cells
  are given higher priority, so the longest cells start first (a shorter makespan on few workers).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator

from harness.errors import HarnessError

SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
Outcome = tuple[dict, "dict | None", "BaseException | None"]


class InProcessExecutor:
    name = "in-process"

    def __init__(self) -> None:
        self.workers = 1

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def describe(self) -> dict:
        return {"executor": self.name, "workers": 1}

    def run(self, fn: Callable[..., dict], cells: Iterable[dict]) -> Iterator[Outcome]:
        refs = _Caches()
        for c in cells:
            try:
                rec = fn(c, refs.get(c["device"]))
            except HarnessError as exc:
                yield c, None, exc
            else:
                yield c, rec, None


class _Caches:
    """One `cells.reference_cache` per device, made when first needed."""

    def __init__(self) -> None:
        self.by_device: dict[str, object] = {}

    def get(self, device: str):
        if device not in self.by_device:
            from harness.study.cells import reference_cache

            self.by_device[device] = reference_cache(device)
        return self.by_device[device]


def _on_worker(fn: Callable[..., dict], cell: dict) -> dict:
    """The Dask task: `fn(cell, refs)` with the reference cache kept on the worker running it (Dask's
    per-worker state, so consecutive cells of the same instance reuse the exact reference)."""
    from distributed import get_worker

    worker = get_worker()
    caches = getattr(worker, "_lora_study_refs", None)
    if caches is None:
        caches = worker._lora_study_refs = _Caches()
    return fn(cell, caches.get(cell["device"]))


def cell_cost(cell: dict) -> float:
    """A rough relative cost of a cell (for scheduling order only): L^2 for the exact solvers and
    third-party ones, L for the approximate built-ins, scaled by the repeats."""
    L = float(cell.get("L", 1))
    quad = cell.get("solver") in ("closed-form", "autograd", "streaming") or ":" in str(cell.get("solver"))
    base = L * L / 64.0 if quad else L * 8.0
    if cell.get("group") == "phase":
        base = L * L / 16.0
    return base * (1 + cell.get("repeats", 1))


class DaskExecutor:
    """Cells as Dask tasks (see the module doc). Needs the `distributed` extra."""

    name = "dask"

    def __init__(
        self,
        workers: int | None = None,
        scheduler: str | None = None,
        *,
        worker_memory: str | float | None = "auto",
        timeout: float = 30.0,
    ) -> None:
        if (workers is None) == (scheduler is None):
            raise HarnessError("the dask executor needs exactly one of --workers N and --scheduler ADDRESS")
        if workers is not None and workers < 1:
            raise HarnessError(f"--workers must be >= 1, got {workers}")
        self.n_workers, self.address, self.timeout = workers, scheduler, timeout
        self.worker_memory = worker_memory
        self.client = self.cluster = None

    @property
    def workers(self) -> int:
        if self.client is None:
            return self.n_workers or 0
        return len(self.client.scheduler_info().get("workers", {}))

    def describe(self) -> dict:
        return {
            "executor": self.name,
            "workers": self.workers,
            "cluster": "LocalCluster" if self.cluster is not None else self.address,
        }

    def __enter__(self) -> DaskExecutor:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise HarnessError(
                "--executor dask needs Dask distributed: pip install 'lora-limits[distributed]'"
            ) from None
        try:
            if self.address is None:
                # one BLAS/OpenMP thread per worker process (each task also pins torch and BLAS to
                # one thread); on loopback only, no dashboard (no bokeh)
                # worker-saturation 1.0: a worker holds only the cell it runs, so a worker that dies
                # (a cell out of memory) takes no queued, innocent cell down with it
                # The nanny's default environment also sets MALLOC_TRIM_THRESHOLD_=65536, which turns off
                # glibc's adaptive mmap threshold: every buffer above 128 KiB is then mmapped and faulted
                # in anew on each call (measured: 2x the system time of an in-process run), so the workers
                # get the one-thread settings only and allocate like the in-process executor.
                with dask.config.set(
                    {
                        "distributed.scheduler.worker-saturation": 1.0,
                        "distributed.nanny.pre-spawn-environ": dict(SINGLE_THREAD_ENV),
                    }
                ):
                    self.cluster = LocalCluster(
                        n_workers=self.n_workers,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        memory_limit=self.worker_memory or 0,
                        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                        silence_logs=logging.CRITICAL,
                    )
                self.client = Client(self.cluster, timeout=self.timeout)
            else:
                self.client = Client(self.address, timeout=self.timeout)
                self.client.wait_for_workers(1, timeout=self.timeout)
        except HarnessError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            where = self.address or f"a local cluster of {self.n_workers} workers"
            raise HarnessError(
                f"cannot start the dask executor on {where}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for obj in (self.client, self.cluster):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # pragma: no cover - shutting down a broken cluster
                    pass
        self.client = self.cluster = None

    def run(self, fn: Callable[..., dict], cells: Iterable[dict]) -> Iterator[Outcome]:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        from harness.study.grid import cell_id

        cells = list(cells)
        if not cells:
            return
        futs = {}
        for c in cells:
            f = self.client.submit(
                _on_worker,
                fn,
                c,
                key=f"lora-cell-{cell_id(c)}",
                pure=False,
                priority=int(math.log2(1 + cell_cost(c)) * 16),
            )
            futs[f.key] = (f, c)
        try:
            for f in as_completed([f for f, _ in futs.values()]):
                _, c = futs.pop(f.key)
                try:
                    rec = f.result()
                except KilledWorker as exc:
                    yield (
                        c,
                        None,
                        HarnessError(
                            f"cell {cell_id(c)} lost its worker too often and is left "
                            f"missing ({str(exc).splitlines()[0]})"
                        ),
                    )
                except HarnessError as exc:
                    yield c, None, exc
                except Exception as exc:  # a worker's error that run_cell_task did not wrap
                    yield c, None, HarnessError(f"cell {cell_id(c)}: {type(exc).__name__}: {exc}")
                else:
                    yield c, rec, None
                finally:
                    f.release()
        finally:
            for f, _ in futs.values():  # interrupted: nothing left running on the cluster
                f.cancel()
