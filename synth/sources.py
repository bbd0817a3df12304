"""Load task rows from a Hugging Face dataset, a local file, or a list.

Every source ends as a polars frame with the columns `question`, `answer` and
`id`, after a column mapping. Bad rows (missing or empty question, duplicate
id, text that is not valid UTF-8) are an error that lists them, or, with
`on_invalid="skip"`, are dropped and counted by reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import polars as pl


class SourceError(ValueError):
    """A task source is missing, unreadable, or has invalid rows."""


@dataclass(frozen=True)
class Columns:
    question: str = "question"
    answer: str | None = "answer"  # None: label-free (no reference column)
    id: str | None = None  # None: ids are derived from the question text
    difficulty: str | None = None
    solution: str | None = None  # a worked solution; defaults to the answer column
    keep_fields: bool = False  # also a `fields` column: every source column of the row, as JSON


@dataclass
class Loaded:
    rows: pl.DataFrame  # question, answer, id, difficulty, solution
    skipped: dict[str, int] = field(default_factory=dict)


def read_source(
    path: str | list[dict], split: str = "train", revision: str | None = None, name: str | None = None
) -> pl.DataFrame:
    """Raw rows from a list, a .jsonl/.json/.parquet/.csv file, a local dataset folder or a hub id."""
    if isinstance(path, list):
        return pl.DataFrame(path) if path else pl.DataFrame()
    p = Path(path)
    if p.is_file():
        return _read_file(p)
    if p.suffix in {".jsonl", ".json", ".parquet", ".csv"} or p.name.endswith(".jsonl.gz"):
        raise SourceError(f"dataset file not found: {p}")
    return _read_hf(str(path), split, revision, name)


def _read_file(p: Path) -> pl.DataFrame:
    if p.name.endswith(".jsonl.gz"):  # HumanEval ships this way
        import gzip

        try:
            return pl.read_ndjson(io.BytesIO(gzip.decompress(p.read_bytes())), infer_schema_length=None)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise SourceError(f"cannot read {p}: {exc}") from None
    source: Path | io.BytesIO = p
    if p.suffix in {".jsonl", ".json", ".csv"}:  # text formats: check the encoding before parsing
        raw = p.read_bytes()
        if raw.startswith(BOM):  # Windows tools write one; it is not part of the first key
            raw = raw[len(BOM) :]
            source = io.BytesIO(raw)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise SourceError(f"{p} is not valid UTF-8 (first bad byte on line {line}, offset {exc.start})") from None
        if not raw.strip():  # polars says "could not infer data-type", naming neither file nor cause
            raise SourceError(f"{p} has no rows: it is empty or only whitespace")
        if p.suffix != ".csv" and _SURROGATE_ESCAPE.search(raw):
            _check_json_text(p, raw)  # polars turns a lone surrogate escape into "\x00"
    try:
        if p.suffix == ".jsonl":
            return pl.read_ndjson(source, infer_schema_length=None)
        if p.suffix == ".json":
            return pl.read_json(source)
        if p.suffix == ".parquet":
            return pl.read_parquet(p)
        if p.suffix == ".csv":
            return pl.read_csv(source, infer_schema_length=0)
    except pl.exceptions.PolarsError as exc:
        if p.suffix in {".jsonl", ".json"}:
            _check_json_text(p, raw)  # names the line, when it is one
        raise SourceError(f"cannot read {p}: {str(exc).splitlines()[0]}") from None
    raise SourceError(
        f"unsupported dataset file type {p.suffix!r} ({p}); use .jsonl, .jsonl.gz, .json, .parquet or .csv"
    )


BOM = b"\xef\xbb\xbf"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")


def _check_json_text(p: Path, raw: bytes) -> None:
    """Raise a SourceError naming the first line that is not a JSON object of valid
    Unicode (a lone surrogate escape such as \\ud800 is not text)."""
    lines = raw.decode("utf-8").splitlines() if p.suffix == ".jsonl" else [raw.decode("utf-8")]
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"line {number}" if p.suffix == ".jsonl" else "the file"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            line_no = number if p.suffix == ".jsonl" else exc.lineno
            raise SourceError(f"{p}: line {line_no} is not valid JSON: {exc.msg} (column {exc.colno})") from None
        if p.suffix == ".jsonl" and not isinstance(value, dict):
            raise SourceError(f"{p}: line {number} is a JSON {type(value).__name__}, not an object (one row)")
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise SourceError(
                f"{p}: {where} holds a lone surrogate escape (like \\ud800): not valid Unicode "
                "text; fix or drop that row"
            ) from None


def _read_hf(path: str, split: str, revision: str | None, name: str | None) -> pl.DataFrame:
    import datasets

    try:
        ds = datasets.load_dataset(path, name=name, split=split, revision=revision)
    except Exception as exc:  # the hub client raises many types; the message is what matters
        raise SourceError(
            f"cannot load dataset {path!r} (split {split!r}, revision {revision!r}): "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    return cast(pl.DataFrame, pl.from_arrow(ds.data.table))  # a Table gives a DataFrame


def row_json(raw: pl.DataFrame) -> pl.Series:
    """Each row of `raw` as a JSON object (what a verifier plugin receives as its columns)."""
    if raw.width == 0:
        return pl.Series("fields", ["{}"] * raw.height, dtype=pl.String)
    return raw.select(pl.struct(pl.all()).struct.json_encode().alias("fields"))["fields"]


def load_rows(raw: pl.DataFrame, columns: Columns, on_invalid: str = "error", source: str = "dataset") -> Loaded:
    """Map columns, then validate; errors list the offending rows."""
    wanted = {
        "question": columns.question,
        "answer": columns.answer,
        "id": columns.id,
        "difficulty": columns.difficulty,
        "solution": columns.solution,
    }
    missing = [f"{role} -> {col!r}" for role, col in wanted.items() if col and col not in raw.columns]
    if missing:
        raise SourceError(f"{source}: column(s) not found: {', '.join(missing)}; available: {raw.columns}")
    if raw.height == 0:
        raise SourceError(f"{source}: no rows")
    for role, col in wanted.items():
        if col and isinstance(raw[col].dtype, (pl.List, pl.Array, pl.Struct, pl.Object)):
            raise SourceError(
                f"{source}: column {col!r} ({role}) holds {raw[col].dtype} values, not text; "
                f"map {role} to a text column"
            )
    df = pl.DataFrame(
        {
            "question": raw[columns.question].cast(pl.String),
            "answer": raw[columns.answer].cast(pl.String) if columns.answer else pl.Series([""] * raw.height),
            "difficulty": raw[columns.difficulty].cast(pl.String).str.extract(r"(\d+)").cast(pl.Int32)
            if columns.difficulty
            else pl.Series([1] * raw.height, dtype=pl.Int32),
            "solution": raw[columns.solution or columns.answer or columns.question].cast(pl.String),
        }
    ).with_row_index("row")
    if columns.keep_fields:
        df = df.with_columns(fields=row_json(raw))
    ids = (
        raw[columns.id].cast(pl.String)
        if columns.id
        else df["question"].map_elements(
            lambda q: "q-" + hashlib.sha1((q or "").encode()).hexdigest()[:12], return_dtype=pl.String
        )
    )
    df = df.with_columns(id=ids)
    problems = {
        "empty question": df.filter(pl.col("question").is_null() | (pl.col("question").str.strip_chars() == "")),
        "missing id": df.filter(pl.col("id").is_null() | (pl.col("id") == "")),
        "duplicate id": df.filter(pl.col("id").is_duplicated() & (pl.int_range(pl.len()).over("id") > 0)),
    }
    if columns.answer:
        problems["missing answer"] = df.filter(pl.col("answer").is_null() | (pl.col("answer").str.strip_chars() == ""))
    bad = {reason: rows for reason, rows in problems.items() if rows.height}
    if bad and on_invalid != "skip":
        lines = [f"{source}: {sum(r.height for r in bad.values())} invalid row(s) (set on_invalid: skip to drop them):"]
        for reason, rows in bad.items():
            shown = ", ".join(str(i) for i in rows["row"].head(10).to_list())
            more = f" and {rows.height - 10} more" if rows.height > 10 else ""
            lines.append(f"  - {reason}: row(s) {shown}{more}")
        raise SourceError("\n".join(lines))
    drop = set()
    for rows in bad.values():
        drop |= set(rows["row"].to_list())
    kept = df.filter(~pl.col("row").is_in(list(drop))).drop("row")
    if kept.height == 0:
        raise SourceError(f"{source}: every row is invalid ({ {k: v.height for k, v in bad.items()} })")
    return Loaded(kept, {reason: rows.height for reason, rows in bad.items()})
