"""README.md's result tables are what scripts/readme_tables.py writes from the results files (`make readme`)."""
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)


@pytest.fixture(scope="module")
def tables():
    return readme_tables.generate()


def test_readme_tables_match_the_results_files(tables):
    text = (ROOT / "README.md").read_text()
    assert readme_tables.diff(text, tables) == "", "README.md's tables differ from the files: run `make readme`"


def test_one_changed_digit_in_any_table_is_caught(tables):
    "The check has power: a README with one digit of one table altered differs, and is written back as it was."
    text = (ROOT / "README.md").read_text()
    for name, body in tables.items():
        row = body.splitlines()[2]                                        # the table's first row of numbers
        at = text.index(row, text.index(f"<!-- table: {name} -->"))
        i = at + max(m.start() for m in re.finditer(r"\d", row))         # its last digit
        altered = text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:]
        assert readme_tables.diff(altered, tables) != "", name
        assert readme_tables.render(altered, tables) == text, name


def test_a_table_without_its_markers_is_an_error(tables):
    text = (ROOT / "README.md").read_text().replace("<!-- table: wong -->", "", 1)
    with pytest.raises(ValueError, match="must mark each"):
        readme_tables.render(text, tables)
