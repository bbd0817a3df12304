"""Task sources: files, local dataset folders through `datasets`, lists; bad rows; bad dataset
files and encodings, each error naming the file, line or column."""

import json

import polars as pl
import pytest

from synth.sources import Columns, SourceError, load_rows, read_source


def _write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


ROWS = [{"q": "1+1?", "a": "2", "k": "x1"}, {"q": "2+2?", "a": "4", "k": "x2"}]


@pytest.mark.parametrize("suffix", ["jsonl", "parquet", "csv"])
def test_files_load_with_a_column_mapping(tmp_path, suffix):
    path = tmp_path / f"d.{suffix}"
    df = pl.DataFrame(ROWS)
    {"jsonl": df.write_ndjson, "parquet": df.write_parquet, "csv": df.write_csv}[suffix](path)
    out = load_rows(read_source(str(path)), Columns(question="q", answer="a", id="k")).rows
    assert out["question"].to_list() == ["1+1?", "2+2?"] and out["id"].to_list() == ["x1", "x2"]


def test_a_local_dataset_folder_goes_through_datasets_load_dataset(tmp_path):
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    _write_jsonl(folder / "train.jsonl", ROWS)
    out = load_rows(read_source(str(folder), split="train"), Columns(question="q", answer="a")).rows
    assert out.height == 2 and out["id"][0].startswith("q-")


def test_in_memory_lists_and_label_free_sources():
    out = load_rows(read_source([{"question": "why?"}]), Columns(answer=None)).rows
    assert out["answer"].to_list() == [""]


def test_missing_columns_name_what_exists(tmp_path):
    with pytest.raises(
        SourceError, match=r"column\(s\) not found: question -> 'question'.*available: \['q', 'a', 'k'\]"
    ):
        load_rows(read_source(ROWS), Columns())


def test_bad_rows_are_listed_or_skipped_with_counts():
    rows = ROWS + [{"q": " ", "a": "1", "k": "x3"}, {"q": "3+3?", "a": "6", "k": "x1"}, {"q": "4?", "a": "", "k": "x5"}]
    with pytest.raises(SourceError) as err:
        load_rows(read_source(rows), Columns(question="q", answer="a", id="k"), source="gsm8k train")
    text = str(err.value)
    assert "3 invalid row(s)" in text and "empty question: row(s) 2" in text
    assert "duplicate id: row(s) 3" in text and "missing answer: row(s) 4" in text
    loaded = load_rows(read_source(rows), Columns(question="q", answer="a", id="k"), on_invalid="skip")
    assert loaded.rows["id"].to_list() == ["x1", "x2"]
    assert loaded.skipped == {"empty question": 1, "duplicate id": 1, "missing answer": 1}


def test_non_utf8_and_missing_files_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"q": "ok"}\n{"q": "caf\xe9"}\n')
    with pytest.raises(SourceError, match="not valid UTF-8.*line 2"):
        read_source(str(bad))
    with pytest.raises(SourceError, match="dataset file not found"):
        read_source(str(tmp_path / "none.jsonl"))
    with pytest.raises(SourceError, match="cannot load dataset"):
        read_source(str(tmp_path / "no-such-dataset-folder"))
    with pytest.raises(SourceError, match="no rows"):
        load_rows(pl.DataFrame({"question": []}, schema={"question": pl.String}), Columns(answer=None))


def test_dataset_task_configs_are_validated():
    from selftaught.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="task 'gsm8k' needs train and test"):
        parse_config({"task": {"name": "gsm8k"}})
    with pytest.raises(ConfigError, match="template must contain"):
        parse_config({"task": {"name": "gsm8k", "train": {"path": "x"}, "test": {"path": "y"}, "template": "Q:"}})


def test_chat_template_renders_prompts_with_few_shot_turns(tmp_path):
    from selftaught.config import parse_config
    from synth.tasks import make_task
    from synth.tiny import char_tokenizer

    tok = char_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    tok.save_pretrained(tmp_path / "tok")
    _write_jsonl(tmp_path / "train.jsonl", [{"question": f"q{i}", "answer": f"s{i} #### {i}"} for i in range(6)])
    cfg = parse_config(
        {
            "model": {"base": str(tmp_path / "tok")},
            "task": {
                "name": "gsm8k",
                "train": {"path": str(tmp_path / "train.jsonl")},
                "test": {"path": str(tmp_path / "train.jsonl")},
                "few_shot": 1,
                "chat_template": True,
                "template": "{question}",
                "eval_size": 2,
            },
        }
    )
    prompt = make_task(cfg.task, cfg.model.base).eval_set(set())["prompt"][1]
    assert prompt == "<user>q0\n<assistant>s0 #### 0\n<user>q1\n<assistant>"


def test_chat_template_errors_are_clear(tmp_path):
    from selftaught.config import ConfigError, parse_config
    from synth.tasks import load_chat_tokenizer
    from synth.tiny import char_tokenizer

    with pytest.raises(ConfigError, match="tiny character tokenizer has none"):
        parse_config({"task": {"name": "gsm8k", "train": {"path": "x"}, "test": {"path": "y"}, "chat_template": True}})
    char_tokenizer().save_pretrained(tmp_path / "plain")
    with pytest.raises(ValueError, match="has no chat template"):
        load_chat_tokenizer(str(tmp_path / "plain"))


def _task(tmp_path, name="gsm8k", rows=None, path=None, suffix=".jsonl", **source):
    from selftaught.config import TaskConfig
    from synth.tasks import make_task

    if rows is not None:
        path = tmp_path / f"rows{suffix}"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    src = {"path": str(path), **source}
    return make_task(TaskConfig(name=name, train=src, test=src))


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda t: _task(t, path=t / "nope.jsonl"), r"dataset file not found: .*nope.jsonl"),
        (lambda t: _task(t, rows=[{"q": "1+1", "answer": "2"}]), r"column\(s\) not found: question -> 'question'"),
        (lambda t: _task(t, rows=[]), r"rows.jsonl has no rows: it is empty or only whitespace"),
        (
            lambda t: _task(t, path=(t.joinpath("blank.csv").write_text("  \n\n \n"), t / "blank.csv")[1]),
            r"blank.csv has no rows: it is empty or only whitespace",
        ),
        (
            lambda t: _task(t, rows=[{"question": " ", "answer": "#### 2"}, {"question": "ok", "answer": ""}]),
            r"(?s)2 invalid row\(s\).*empty question: row\(s\) 0.*missing answer: row\(s\) 1",
        ),
        (
            lambda t: _task(
                t,
                rows=[
                    {"question": "a", "answer": "#### 1", "id": "x"},
                    {"question": "b", "answer": "#### 2", "id": "x"},
                ],
                id="id",
            ),
            r"duplicate id: row\(s\) 1",
        ),
        (lambda t: _task(t, path=t / "rows.txt"), r"unsupported dataset file type '.txt'"),
        (
            lambda t: _task(
                t, name="humaneval", rows=[{"task_id": "a", "prompt": "def f():", "canonical_solution": "x"}]
            ),
            r"column\(s\) \['entry_point', 'test'\] not found",
        ),
        (lambda t: _task(t, path="no-such-org/no-such-dataset"), r"cannot load dataset 'no-such-org/no-such-dataset'"),
    ],
    ids=[
        "missing file",
        "missing column",
        "empty dataset",
        "whitespace-only dataset",
        "invalid rows listed",
        "duplicate ids",
        "unsupported type",
        "code rows without tests",
        "hub dataset offline",
    ],
)
def test_dataset_errors(tmp_path, setup, message):
    from synth.sources import SourceError

    (tmp_path / "rows.txt").write_text("x")
    with pytest.raises(SourceError, match=message):
        setup(tmp_path).eval_set(set())


def test_dataset_that_is_not_utf8(tmp_path):
    from synth.sources import SourceError, read_source

    bad = tmp_path / "rows.jsonl"
    bad.write_bytes(b'{"question": "ok", "answer": "1"}\n{"question": "caf\xe9", "answer": "2"}\n')
    with pytest.raises(SourceError, match=r"not valid UTF-8 \(first bad byte on line 2"):
        read_source(str(bad))


@pytest.mark.parametrize(
    "name, text, message",
    [
        (
            "bad_line.jsonl",
            b'{"question": "a", "answer": "1"}\n{"question": "b", answer: 2}\n',
            "line 2 is not valid JSON: Expecting property name enclosed in double quotes (column 19)",
        ),
        ("not_a_row.jsonl", b'{"question": "a", "answer": "1"}\n[1, 2]\n', "line 2 is a JSON list, not an object"),
        (
            "surrogate.jsonl",
            b'{"question": "a", "answer": "1"}\n{"question": "b\\ud800", "answer": "2"}\n',
            "line 2 holds a lone surrogate escape",
        ),
        ("nested.jsonl", b'{"question": {"text": "a"}, "answer": "1"}\n', "column 'question' (question) holds Struct"),
        (
            "listed.jsonl",
            b'{"question": ["a", "b"], "answer": "1"}\n',
            "column 'question' (question) holds List(String)",
        ),
        (
            "broken.json",
            b'[{"question": "a", "answer": "1"},\n {"question": "b" "answer": "2"}]',
            "line 2 is not valid JSON: Expecting ',' delimiter",
        ),
    ],
)
def test_bad_dataset_files_name_the_line_or_column(tmp_path, name, text, message):
    from synth.sources import Columns, SourceError, load_rows, read_source

    path = tmp_path / name
    path.write_bytes(text)
    with pytest.raises(SourceError) as err:
        load_rows(read_source(str(path)), Columns())
    assert message in str(err.value)


def test_a_utf8_bom_and_escaped_emoji_are_read_as_text(tmp_path):
    from synth.sources import Columns, load_rows, read_source

    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"question": "a \\ud83d\\ude00", "answer": "1"}\n')
    rows = load_rows(read_source(str(path)), Columns()).rows
    assert rows["question"].to_list() == ["a \U0001f600"] and rows["answer"].to_list() == ["1"]
    csv = tmp_path / "bom.csv"
    csv.write_bytes(b"\xef\xbb\xbfquestion,answer\nb,2\n")
    assert load_rows(read_source(str(csv)), Columns()).rows["question"].to_list() == ["b"]
