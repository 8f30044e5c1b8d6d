"""What a run trains on, frozen when the run is created: one typed snapshot per kind of data.

A snapshot is stored as JSON on its run (``TrainingRun.snapshot``); ``aggregate``, which
every stored snapshot carries (all but the first stored format), says which kind it is:

- :class:`PreferenceSnapshot` (``majority`` or ``none``; missing reads as ``none``): the votes a
  DPO or reward-model run trains on, taken by :func:`rlhf.services.dataset.take_snapshot`;
- :class:`SFTSnapshot` (``demonstrations``): the demonstrations an SFT run trains on, taken by
  :func:`rlhf.services.demonstrations.demonstration_snapshot`.

Read one with :meth:`Snapshot.of` (a run's) or :func:`parse_snapshot` (stored JSON). Both
kinds hold a hash of their content, checked before a run trains: a mismatch is a
:class:`~rlhf.errors.Conflict`. No other field than the declared ones is accepted.

Which votes a run holds is stored beside it, one ``snapshot_vote`` row per vote
(:func:`rlhf.services.runs.run_snapshot` reads them back); the JSON keeps their count
(``votes``). Snapshots stored before that keep their ``vote_ids`` list in the JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal, cast, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    PlainSerializer,
    Tag,
    TypeAdapter,
    model_serializer,
)

from rlhf.errors import InvalidInput
from rlhf.models import TrainingRun

Ties = Literal["drop", "keep"]
Aggregate = Literal["majority", "none"]  # a preference snapshot's: one row per comparison, or per vote
VoteKind = Literal["human", "machine", "judge"]  # whose votes make rows (simulated raters' count as people's)
VOTE_KINDS: tuple[str, ...] = get_args(VoteKind)
# Names stored snapshots and the edges use for sets of kinds; "both" is people's votes and machine labels.
LABEL_NAMES: dict[str, frozenset[VoteKind]] = {
    "human": frozenset({"human"}),
    "machine": frozenset({"machine"}),
    "judge": frozenset({"judge"}),
    "both": frozenset({"human", "machine"}),
    "all": frozenset({"human", "machine", "judge"}),
}


def parse_labels(labels: str | Iterable[str]) -> frozenset[VoteKind]:
    """Whose votes: a name (``human``, ``machine``, ``judge``, ``both``, ``all``), a comma list of
    kinds (``human,judge``) or vote kinds, as a set of kinds."""
    kinds: frozenset[VoteKind] | None
    if isinstance(labels, str) and labels in LABEL_NAMES:
        kinds = LABEL_NAMES[labels]
    else:
        try:
            given = frozenset(
                k.strip() for k in (labels.split(",") if isinstance(labels, str) else labels) if k and k.strip()
            )
        except (TypeError, AttributeError):
            given = frozenset()
        # Checked against VOTE_KINDS here, which mypy cannot follow into the type.
        kinds = cast(frozenset[VoteKind], given) if given and given <= set(VOTE_KINDS) else None
    if kinds is None:
        raise InvalidInput(
            f"labels must be one of {', '.join(LABEL_NAMES)}, or a comma list of {', '.join(VOTE_KINDS)}",
            param="labels",
        )
    return kinds


def labels_name(kinds: Iterable[str]) -> str | list[str]:
    """A set of kinds as stored and shown: its name where it has one (so stored snapshots never change), else sorted."""
    kinds = frozenset(kinds)
    return next((name for name, named in LABEL_NAMES.items() if named == kinds), sorted(kinds))


def _labels_value(value: Any) -> frozenset[str]:
    try:
        return parse_labels(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from None


Labels = Annotated[frozenset[VoteKind], BeforeValidator(_labels_value), PlainSerializer(labels_name)]


class Snapshot(BaseModel):
    """What every snapshot has; a stored one is always read as its own kind (:meth:`of`, :func:`parse_snapshot`).

    Until snapshots were typed, one model served both kinds, so SFT snapshots were stored with
    the preference choices too, at their defaults; they are declared here and still written,
    so stored and new snapshots of either kind read (and show) alike.
    """

    model_config = ConfigDict(extra="forbid")
    # The votes it holds: in memory once taken or read back; stored in snapshot_vote, not here.
    vote_ids: list[int] = []
    votes: int | None = None  # how many, as stored; absent from snapshots that keep vote_ids in the JSON
    rows: int
    # The rows' hash; None while a run's rows are not built yet (its worker builds them: rlhf.services.run_data).
    hash: str | None
    ties: Ties = "drop"
    aggregate: str
    label_noise: float = 0.0
    exclude_flagged: bool = True
    gold_left_out: bool = False
    left_out_raters: dict[str, list[int]] = {}  # {"excluded": [...], "flagged": [...]}
    # Rater id -> probability of being right, frozen when the snapshot was taken.
    rater_reliability: dict[int, float] = {}
    # Whose votes: people's only (every snapshot before machine labels), machine labels, or both.
    labels: Labels = LABEL_NAMES["human"]
    machine_rows: int = 0

    @classmethod
    def of(cls, run: TrainingRun) -> PreferenceSnapshot | SFTSnapshot | None:
        """The run's snapshot; None for runs that train on no stored data (online RL, SFT from a file)."""
        return parse_snapshot(run.snapshot) if run.snapshot else None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        """On :class:`Snapshot` itself, the stored snapshot as its own kind (as :func:`parse_snapshot`)."""
        if cls is Snapshot:
            return _ANY.validate_python(obj, **kwargs)
        return super().model_validate(obj, **kwargs)

    @property
    def built(self) -> bool:
        return self.hash is not None

    @property
    def vote_count(self) -> int:
        return self.votes if self.votes is not None else len(self.vote_ids)

    def summary(self) -> dict[str, Any]:
        """Everything but the vote ids (which can be many), plus how many there are."""
        return {**self.model_dump(exclude={"vote_ids", "votes"}), "votes": self.vote_count}

    def for_storage(self) -> dict[str, Any]:
        """The JSON stored on the run: the count of its votes, whose ids go to ``snapshot_vote``."""
        return self.model_copy(update={"votes": self.vote_count}).model_dump(mode="json")

    def with_vote_ids(self, vote_ids: list[int]) -> Any:
        """This snapshot with the ids of the votes it holds, read back from ``snapshot_vote``."""
        return self.model_copy(update={"vote_ids": list(vote_ids)})

    @model_serializer(mode="wrap")
    def _as_stored(self, handler) -> dict[str, Any]:
        data = handler(self)
        if data.get("votes") is None:
            data.pop("votes", None)  # a snapshot that keeps its list reads and writes as it always did
        else:
            data.pop("vote_ids", None)
        if data.get("sources", ()) is None:
            del data["sources"]  # written only when chosen, as it always has been
        for key in ("judge_label_p", "judge_rows"):
            if key in data and not data[key]:
                del data[key]  # written only with judges' labels: older snapshots read and write as they did
        return data


class PreferenceSnapshot(Snapshot):
    """The votes a DPO or reward-model run trains on (their ids), the choices that made rows of them,
    the raters' reliability then, and the hash of the rows (:func:`rlhf.dataset_rows.content_hash`).

    Snapshots stored before a field existed read with its old behaviour (per-vote rows, gold
    not left out, people's votes), so their hash still verifies.
    """

    aggregate: Aggregate = "none"
    sources: list[str] | None = None  # only pairs of these comparison sources; all when absent
    # With judges' labels: judge user id -> the label_p it had earned when the snapshot was taken
    # (rlhf.services.judge_audit). A judge not in it had not earned one, and its votes made no row.
    judge_label_p: dict[int, float] = {}
    judge_rows: int = 0


class SFTSnapshot(Snapshot):
    """The demonstrations an SFT run trains on (their ids, in id order) and the hash of their
    messages (:func:`rlhf.dataset_rows.sft_hash`). It holds no votes."""

    aggregate: Literal["demonstrations"]
    demonstration_ids: list[int]


def _kind(data: Any) -> str:
    aggregate = data.get("aggregate") if isinstance(data, dict) else getattr(data, "aggregate", None)
    return "sft" if aggregate == "demonstrations" else "preference"


_ANY: TypeAdapter[PreferenceSnapshot | SFTSnapshot] = TypeAdapter(
    Annotated[
        Annotated[PreferenceSnapshot, Tag("preference")] | Annotated[SFTSnapshot, Tag("sft")], Discriminator(_kind)
    ]
)


def parse_snapshot(data: dict[str, Any]) -> PreferenceSnapshot | SFTSnapshot:
    """A stored snapshot as its kind, told by its ``aggregate``."""
    return _ANY.validate_python(data)
