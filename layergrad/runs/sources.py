"""What a run computes, as the runner reads it: ``Conditions`` (samples in memory: compute, reproduce, the
callback) or ``Windows`` (a record source read a window at a time: score). Each gives this rank its share of
the samples not yet done, as parts that the runner computes and commits, and says how the run ends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from layergrad.runs import sharding


@dataclass(frozen=True)
class Part:
    """Samples to compute now: ``conditions`` ({condition: [Sample]}); ``one_chunk``: commit them as one chunk
    (a window) rather than one per batch; ``done``: samples of the part already in the run (progress)."""

    conditions: dict
    one_chunk: bool = False
    done: int = 0


class Conditions:
    """Every condition's samples, loaded before the model; ranks share the samples by work (bin-packed by
    size); the run ends merged into stats.parquet and samples.parquet."""

    merge = True

    def __init__(self, conditions: dict):
        self.conditions = conditions

    def check(self, encode, previous: set, keep_going: bool, log) -> None:
        """Conditions none of whose samples can be computed: refused before any forward, or (``keep_going``)
        named in the log and recorded as skipped."""
        from layergrad.engine.compute import check_usable, unusable

        if keep_going:
            for condition, why in unusable(self.conditions, previous, encode).items():
                log(f"condition '{condition}': {why}; recorded as skipped")
        else:
            check_usable(self.conditions, previous, encode=encode)

    def share(self, world, done: set) -> tuple[Iterator[Part], dict]:
        """(this rank's parts, the progress's total and work)."""
        work = {(name, s.sample_id): len(s.prompt) + len(s.response)  # size of each sample still to do
                for name, ss in self.conditions.items() for s in ss if (name, s.sample_id) not in done}
        conditions = self.conditions
        if world.distributed:
            owner = sharding.assign(work, world.size)
            mine = {key for key, rank in owner.items() if rank == world.rank}
            conditions = {name: [s for s in ss if (name, s.sample_id) in mine] for name, ss in conditions.items()}
            work = {key: work[key] for key in mine}
        return iter([Part(conditions)]), {"total": len(work), "work": work}


class Windows:
    """A record source read ``window`` records at a time, each window one committed chunk (a kill loses at
    most the window in flight); under torchrun each rank takes every world-size-th window. The run is not
    merged (the chunks are read a window at a time by whoever reads the run)."""

    merge = False

    def __init__(self, source, window: int, take, make_samples: Callable, passes: int = 1):
        self.source, self.window, self.take = source, window, take  # take: the records used (data.samples.Subsample)
        self.make_samples, self.passes = make_samples, passes  # (record, index) -> {condition: Sample}, per record

    def check(self, encode, previous: set, keep_going: bool, log) -> None:
        """Nothing to check ahead: a record that cannot be computed is recorded as skipped with its reason."""

    def share(self, world, done: set) -> tuple[Iterator[Part], dict]:
        total = (self.source.count() or 0) if self.take.n is None else self.take.n
        return self.parts(world, done), {"total": total * self.passes}

    def parts(self, world, done: set) -> Iterator[Part]:
        for k, (_, _, records) in enumerate(self.source.picked(self.window, self.take)):
            if world.distributed and k % world.size != world.rank:
                continue
            pending, count = {}, 0
            for index, r in records:
                for condition, sample in self.make_samples(r, index).items():
                    count += 1
                    if (condition, sample.sample_id) not in done:
                        pending.setdefault(condition, []).append(sample)
            yield Part(pending, one_chunk=True, done=count - sum(map(len, pending.values())))
