"""Task sources: files, local dataset folders through `datasets`, lists; bad rows."""

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
