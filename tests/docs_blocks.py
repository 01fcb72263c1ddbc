"""The fenced blocks of README.md and docs/**/*.md that the tests execute.

Two kinds are checked:

- every ```` ```python ```` block runs, page by page in one namespace (as a reader would
  paste them one after the other), and each expression statement with a trailing comment
  must evaluate to the value the comment starts with (``x.shape  # torch.Size([7, 7]): …``);
  a float in the comment holds to the decimals it shows;
- a block preceded by ``<!-- output: checked -->`` holds ``$ layerscope …`` command lines,
  each followed by its output; the test runs each command and compares. A line ``…`` in the
  shown output stands for one or more lines left out. Options after ``checked``: ``, slow``
  marks the block's test slow, ``, columns=120`` runs it at another width than 100.

``LAYERSCOPE_DOCS_REGEN=1 pytest tests/test_docs.py`` rewrites every checked block that has
no ``…`` with the output of a real run (the command lines are kept).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- output: checked(?P<options>(?:, [a-z]+(?:=\d+)?)*) -->\n```[a-z]*\n(?P<body>.*?)```", re.S)
COLUMNS = 100  # the terminal width a checked output is made at, unless its marker says columns=N
PYTHON = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
ELLIPSIS = "…"
PROMPT = "$ "


def pages() -> list[Path]:
    """README.md and every page of the site, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


# --- Python examples -------------------------------------------------------------------


def python_blocks(page: Path) -> list[str]:
    return PYTHON.findall(page.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Claim:
    """``expression  # value…`` in an example: ``expression`` must evaluate to ``value``."""

    line: int
    expression: ast.expr
    value: ast.expr
    text: str


def trailing_comments(code: str) -> dict[int, str]:
    """The comment at the end of each line, by line number, without its ``#``."""
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    return {tok.start[0]: tok.string.lstrip("#").strip() for tok in tokens if tok.type == tokenize.COMMENT}


def value_text(comment: str) -> str:
    """The part of a comment that states a value: up to ``: `` or `` (`` outside brackets and quotes."""
    depth, quote = 0, ""
    for i, ch in enumerate(comment):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and (comment.startswith(": ", i) or comment.startswith(" (", i)):
            return comment[:i]
    return comment


def claims(code: str) -> list[Claim]:
    """Every expression statement with a trailing comment; a comment that is no value is an error."""
    comments = trailing_comments(code)
    found = []
    for statement in ast.parse(code).body:
        comment = comments.get(statement.end_lineno)
        if not isinstance(statement, ast.Expr) or not comment:
            continue
        text = value_text(comment)
        try:
            value = ast.parse(text, mode="eval").body
        except SyntaxError:
            raise AssertionError(f"line {statement.lineno}: the comment {comment!r} states no Python value") from None
        found.append(Claim(statement.lineno, statement.value, value, text))
    return found


def holds(value: ast.expr, actual: object, namespace: dict) -> bool:
    """Whether ``actual`` is what ``value`` shows; floats to the decimals shown."""
    if isinstance(value, (ast.Tuple, ast.List)):
        kind = tuple if isinstance(value, ast.Tuple) else list
        return (
            isinstance(actual, kind)
            and len(actual) == len(value.elts)
            and all(holds(v, a, namespace) for v, a in zip(value.elts, actual))
        )
    shown = eval(compile(ast.Expression(value), "<claim>", "eval"), namespace)  # noqa: S307 (our own docs)
    if isinstance(shown, float):
        decimals = len(ast.unparse(value).partition(".")[2]) if "." in ast.unparse(value) else 0
        return isinstance(actual, (int, float)) and abs(round(float(actual), decimals) - shown) < 1e-9
    return type(actual) is type(shown) and actual == shown


# --- CLI output ------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    argv: str
    shown: list[str]


@dataclass(frozen=True)
class OutputBlock:
    page: Path
    index: int  # the page's n-th checked block
    line: int
    slow: bool
    columns: int
    start: int  # offsets of the block's body in the page
    end: int
    commands: list[Command]

    @property
    def id(self) -> str:
        return f"{page_id(self.page)}:{self.line}"


def output_blocks(page: Path) -> list[OutputBlock]:
    text = page.read_text(encoding="utf-8")
    blocks = []
    for index, match in enumerate(MARKER.finditer(text)):
        commands: list[Command] = []
        for line in match["body"].splitlines():
            if line.startswith(PROMPT + "layerscope"):
                commands.append(Command(line.removeprefix(PROMPT), []))
            elif not commands:
                raise AssertionError(f"{page_id(page)}: a checked block starts with {line!r}, not `$ layerscope …`")
            else:
                commands[-1].shown.append(line)
        line_no = text.count("\n", 0, match.start()) + 1
        options = dict(option.partition("=")[::2] for option in match["options"].split(", ") if option)
        blocks.append(
            OutputBlock(
                page,
                index,
                line_no,
                "slow" in options,
                int(options.get("columns") or COLUMNS),
                match.start("body"),
                match.end("body"),
                commands,
            )
        )
    return blocks


def matches(shown: list[str], actual: list[str]) -> bool:
    """Line by line, ``…`` standing for one or more lines."""
    pattern = "".join(r"(?:[^\n]*\n)+?" if line.strip() == ELLIPSIS else re.escape(line) + r"\n" for line in shown)
    return re.fullmatch(pattern, "".join(line + "\n" for line in actual)) is not None


def rewritten(block: OutputBlock, outputs: list[list[str]]) -> str:
    """The page as it is now with ``block``'s outputs replaced by ``outputs`` (the command lines kept)."""
    text = block.page.read_text(encoding="utf-8")
    block = output_blocks(block.page)[block.index]  # earlier rewrites of the page moved it
    body = "".join(
        PROMPT + command.argv + "\n" + "".join(line + "\n" for line in output)
        for command, output in zip(block.commands, outputs)
    )
    return text[: block.start] + body + text[block.end :]
