"""``layerscope lens``: the table for people, the JSON for scripts, one-line errors."""

from __future__ import annotations

import json

from layerscope.cli.main import main

PROMPT = "3 5 7 9 11 13 15 17 19 21 23 25"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_table_reads_at_80_columns_with_the_prompt_as_header(capsys, counter_folder):
    code, out, _ = run(capsys, "lens", str(counter_folder), "--prompt", PROMPT)
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    headers = [line for line in lines if line.startswith("layer ")]
    assert len(headers) >= 2  # twelve positions wrap onto a second table
    assert "0:3" in headers[0] and "11:25" in headers[-1]
    assert sum(line.startswith("model.layers.1 ") for line in lines) == len(headers)
    last = [line for line in lines if line.startswith("model.layers.1 ")][-1]
    assert last.split()[-2] == "27"  # counting in twos: after 25 comes 27


def test_json_is_exactly_the_documented_shape(capsys, counter_folder):
    code, out, _ = run(
        capsys,
        "lens",
        str(counter_folder),
        "--prompt",
        "3 5 7",
        "--json",
        "--top-k",
        "2",
        "--layers",
        "embeddings,-1",
        "--position",
        "-1",
    )
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["model", "tokens", "layers"] and data["tokens"] == ["3", "5", "7"]
    assert [layer["layer"] for layer in data["layers"]] == ["embeddings", "model.layers.1"]
    for layer in data["layers"]:
        assert list(layer) == ["layer", "positions"] and len(layer["positions"]) == 1
        top = layer["positions"][0]["top"]
        assert list(layer["positions"][0]) == ["top"] and len(top) == 2
        assert [list(guess) for guess in top] == [["token", "id", "p"]] * 2
        assert top[0]["p"] >= top[1]["p"]
    assert data["layers"][-1]["positions"][0]["top"][0]["token"] == "9"


def test_attention_text_and_json(capsys, counter_folder):
    code, out, _ = run(
        capsys, "lens", str(counter_folder), "--prompt", "3 5 7 9", "--attention", "model.layers.1", "--json"
    )
    data = json.loads(out)
    assert code == 0 and list(data) == ["layer", "heads"] and data["layer"] == "model.layers.1"
    assert len(data["heads"]) == 4 and all(len(row) == 4 for row in data["heads"])
    code, out, _ = run(
        capsys, "lens", str(counter_folder), "--prompt", "3 5 7 9", "--attention", "0", "--position", "1"
    )
    assert code == 0 and out.startswith("attention of model.layers.0, from position 1 (5) over 4 tokens")
    heads = [line.split() for line in out.splitlines() if line.startswith("head ")]
    assert len(heads) == 4 and all(row[4:] == ["0.00", "0.00"] for row in heads)  # causal: no looking ahead


def test_errors_are_one_line(capsys, counter_folder):
    for argv, message in [
        (["--prompt", ""], "the prompt is empty"),
        (["--prompt", "3 5", "--layers", "model.layers.9"], "'model.layers.9' is not a decoder block"),
        (["--prompt", "3 5", "--attention", "model.norm"], "'model.norm' is not a decoder block"),
    ]:
        code, out, err = run(capsys, "lens", str(counter_folder), *argv)
        assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err
    code, _, err = run(capsys, "lens", "resnet18", "--weights", "none", "--prompt", "hello")
    assert code == 2 and "resnet18 is a torchvision model (ResNet), not a causal language model" in err


def test_a_folder_whose_tokenizer_or_model_names_its_own_code_runs_none_of_it(capsys, counter_folder, tmp_path):
    """``auto_map`` in tokenizer_config.json and config.json points at the folder's own Python:
    without ``--trust`` it is refused in one line before anything loads; the marker proves nothing ran."""
    import shutil

    folder = tmp_path / "evil"
    shutil.copytree(counter_folder, folder)
    marker = tmp_path / "ran"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n")
    for name, key in (("tokenizer_config.json", "AutoTokenizer"), ("config.json", "AutoModelForCausalLM")):
        data = json.loads((folder / name).read_text())
        data["auto_map"] = {key: ["evil.Evil", None] if key == "AutoTokenizer" else "evil.Evil"}
        (folder / name).write_text(json.dumps(data))
    code, out, err = run(capsys, "lens", str(folder), "--prompt", "3 5 7")
    assert not marker.exists()
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"layerscope: error: {folder} ships its own Python code (auto_map in config.json, evil.py), which loading "
        "would run; pass --trust only if you trust its source"
    ]
