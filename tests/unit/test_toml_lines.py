"""flowmake.config.toml_lines: the line of a dotted key, for error messages."""

from __future__ import annotations

import textwrap

import pytest

from flowmake.config.toml_lines import key_lines, locate

TEXT = textwrap.dedent('''\
    # a comment line
    [flow]
    jobs = 4            # trailing comment

    [params]
    lr = 0.01
    "quoted.key" = 1

    [targets.train]  # the model
    cmd = """
    [targets.fake]
    deps = ["inside a string"]
    """
    deps = ["clean"]
    inputs = { df = "data/clean.parquet", extra = "x = y" }
    params.lr = "${params.lr}"

    [ targets . "odd.name" ]
    cmd = 'x'
    help = \'\'\'
    help = "body"
    \'\'\'
    retries = 1

    [targets.sweep.matrix]
    lr = [0.1, 0.01]
''')


def test_key_lines_tables_and_keys():
    lines = key_lines(TEXT)
    assert lines["flow"] == 2
    assert lines["flow.jobs"] == 3
    assert lines["params"] == 5
    assert lines["params.lr"] == 6
    assert lines["params.quoted.key"] == 7
    assert lines["targets.train"] == 9
    assert lines["targets.train.cmd"] == 10
    assert lines["targets.train.deps"] == 14
    assert lines["targets.train.inputs"] == 15
    assert lines["targets.train.params.lr"] == 16
    assert lines["targets.odd.name"] == 18
    assert lines["targets.odd.name.cmd"] == 19
    assert lines["targets.odd.name.help"] == 20
    assert lines["targets.odd.name.retries"] == 23
    assert lines["targets.sweep.matrix"] == 25
    assert lines["targets.sweep.matrix.lr"] == 26


def test_key_lines_ignores_multiline_string_bodies():
    lines = key_lines(TEXT)
    assert "targets.fake" not in lines
    assert "targets.fake.deps" not in lines
    # ``help = "body"`` inside the literal multi-line string is no key either.
    assert lines["targets.odd.name.help"] == 20


def test_key_lines_do_not_split_inline_tables():
    lines = key_lines(TEXT)
    # An inline table is one key on one line; its contents (even "x = y") add no keys.
    assert not any(k.startswith("targets.train.inputs.") for k in lines)
    assert "targets.train.inputs.extra" not in lines


def test_one_line_triple_quoted_string_does_not_start_a_block():
    text = 'a = """one line"""\nb = 2\n'
    assert key_lines(text) == {"a": 1, "b": 2}


def test_first_definition_wins():
    text = "[t]\nx = 1\n[t]\nx = 2\n"
    assert key_lines(text) == {"t": 1, "t.x": 2}


@pytest.mark.parametrize(("key", "line"), [
    ("targets.train.deps", 14),
    ("targets.train.inputs.df", 15),       # inside an inline table: the table's line
    ("targets.train.inputs.extra", 15),
    ("targets.train.timeout", 9),         # not in the file: its table's header
    ("targets.sweep.matrix.depth", 25),
    ("params.lr", 6),
])
def test_locate_falls_back_to_enclosing_key(tmp_path, key, line):
    path = tmp_path / "flow.toml"
    path.write_text(TEXT)
    assert locate(path, key) == line
    assert locate(str(path), key) == line


def test_locate_unknown(tmp_path):
    path = tmp_path / "flow.toml"
    path.write_text(TEXT)
    assert locate(path, "nothing.here") is None
    assert locate(tmp_path / "missing.toml", "flow.jobs") is None


def test_locate_inline_target_table(tmp_path):
    path = tmp_path / "flow.toml"
    path.write_text('[targets]\na = { cmd = "x" }\nb = { cmd = "y", deps = 5 }\n')
    assert locate(path, "targets.b.deps") == 3
    assert locate(path, "targets.a") == 2


def test_triple_quotes_in_a_comment_do_not_hide_later_keys():
    text = "\n".join([
        "[targets.a]",
        'cmd = "true"',
        '# a multi-line cmd would use """ quotes',
        "help = 3    # or " + "'" * 3 + " quotes",
        "deps = []",
    ])
    lines = key_lines(text)
    assert lines["targets.a.help"] == 4
    assert lines["targets.a.deps"] == 5


def test_hash_inside_strings_is_not_a_comment():
    text = textwrap.dedent('''\
        [targets.a]
        cmd = "echo '#' \\"\\"\\"" # x
        help = """ has # inside
        x = 1
        """
        deps = []
    ''')
    lines = key_lines(text)
    assert "targets.a.x" not in lines
    assert lines["targets.a.deps"] == 6
