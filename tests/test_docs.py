"""The user docs: the mkdocs site builds strictly offline, and every Python snippet parses."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def snippets() -> list[tuple[str, str]]:
    found = []
    for page in [ROOT / "README.md", *PAGES]:
        for i, code in enumerate(SNIPPET.findall(page.read_text(encoding="utf-8"))):
            found.append((f"{page.name}#{i + 1}", code))
    return found


def test_the_site_builds_with_strict_checks(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    built = {p.parent.name for p in tmp_path.glob("*/index.html")}
    assert built >= {p.stem for p in PAGES if p.stem != "index"}


def test_every_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert [p.name for p in PAGES if p.name not in nav] == []


@pytest.mark.parametrize(("where", "code"), snippets(), ids=[w for w, _ in snippets()])
def test_snippets_parse_and_import_only_what_exists(where: str, code: str) -> None:
    tree = ast.parse(code.replace("{...}", "{}"), filename=where)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("evkafka"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{where}: {node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("evkafka"):
                    importlib.import_module(alias.name)
