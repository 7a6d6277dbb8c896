"""The results files: every line of a log checked when read, damaged lines named and repaired, one writer per log."""
import pytest

from randsmooth.logs import (CERTIFY_COLUMNS, PREDICT_COLUMNS, ResultsFileError, certified_accuracy, done_indices,
                             read_log, repair_log)

GOOD = "{i}\t7\t7\t0.812000\t1\t0:00:01.500000\t0.999\t9990\t100\t10000\t0.001\t0.25"


def write(path, *lines, columns=CERTIFY_COLUMNS):
    path.write_text("\t".join(columns) + "\n" + "".join(l + "\n" for l in lines))
    return path


def test_log_format_is_read_back_by_the_analysis(tmp_path):
    log = write(tmp_path / "log.tsv", "0\t7\t7\t0.812000\t1\t0:00:01.500000\t0.999\t9990\t100\t10000\t0.001\t0.25",
                "1\t2\t-1\t0.000000\t0\t0:00:01.250000\t0.41\t4100\t100\t10000\t0.001\t0.25",
                "2\t1\t3\t0.300000\t0\t0:00:01.000000\t0.8\t8000\t100\t10000\t0.001\t0.25")
    df = read_log(log)
    assert df["time"].tolist() == [1.5, 1.25, 1.0]
    assert certified_accuracy(df, [0.0, 0.5, 1.0]).tolist() == [1 / 3, 1 / 3, 0.0]


def test_a_damaged_middle_line_with_a_valid_index_is_not_a_result(tmp_path):
    "The line of the issue: it starts like a row of input 6, and used to count as done, silently."
    log = write(tmp_path / "log.tsv", GOOD.format(i=5), "6\t0\t0\t0.61", GOOD.format(i=7))
    with pytest.raises(ResultsFileError, match=r"log.tsv, line 3: 4 fields where the header has 12"):
        read_log(log)
    with pytest.raises(ResultsFileError, match="--repair"):
        done_indices(log)
    assert repair_log(log) == [3] and done_indices(log) == {5, 7}          # input 6 will be certified again
    assert "6\t0\t0\t0.61" in (tmp_path / "log.tsv.damaged").read_text()


BAD_VALUES = {"idx": "-3", "label": "x", "predict": "-2", "radius": "inf", "correct": "2", "time": "yesterday",
              "p_a_lower": "1.5", "n_a": "3.5", "n0": "0", "n": "-1", "alpha": "0", "sigma": "-0.25"}


@pytest.mark.parametrize("column", CERTIFY_COLUMNS)
def test_every_column_is_checked(tmp_path, column):
    fields = GOOD.format(i=0).split("\t")
    fields[CERTIFY_COLUMNS.index(column)] = BAD_VALUES[column]
    with pytest.raises(ResultsFileError, match=f"line 2: {column} is"):
        read_log(write(tmp_path / "log.tsv", "\t".join(fields)))


@pytest.mark.parametrize("line,why", [
    ("0\t7\t3\t0.812000\t1\t0:00:01.500000\t0.999\t9990\t100\t10000\t0.001\t0.25", "correct is 1 but predict is 3"),
    ("0\t7\t-1\t0.812000\t0\t0:00:01.500000\t0.999\t9990\t100\t10000\t0.001\t0.25", "an abstention"),
    ("0\t7\t7\t0.812000\t1\t0:00:01.500000\t0.999\t19990\t100\t10000\t0.001\t0.25", "counts above n")])
def test_a_line_must_agree_with_itself(tmp_path, line, why):
    with pytest.raises(ResultsFileError, match=why):
        read_log(write(tmp_path / "log.tsv", line))


def test_an_index_logged_twice_is_damage(tmp_path):
    log = write(tmp_path / "log.tsv", GOOD.format(i=0), GOOD.format(i=1), GOOD.format(i=1))
    with pytest.raises(ResultsFileError, match="line 4: repeats line 3"):
        read_log(log)
    other = GOOD.format(i=1).replace("0.812000", "0.700000")
    log = write(tmp_path / "log2.tsv", GOOD.format(i=1), other)
    with pytest.raises(ResultsFileError, match="line 2: index 1 also at line 3, with other values"):
        read_log(log)
    assert repair_log(log) == [2, 3] and done_indices(log) == set()       # neither can be trusted


def test_predict_logs_are_checked_too(tmp_path):
    line = "0\t4\t4\t1\t0:00:00.010000\t1e-20\t70\t20\t100\t0.001\t0.25"
    assert read_log(write(tmp_path / "p.tsv", line, columns=PREDICT_COLUMNS))["n_b"].tolist() == [20]
    with pytest.raises(ResultsFileError, match="counts above n = 50"):
        read_log(write(tmp_path / "p.tsv", line.replace("\t100\t", "\t50\t"),
                       columns=PREDICT_COLUMNS))


def test_not_a_log(tmp_path):
    (tmp_path / "empty.tsv").write_text("")
    (tmp_path / "binary.tsv").write_bytes(b"\xff\xfe\x00garbage")
    for name, why in (("empty.tsv", "is empty"), ("binary.tsv", "is not a text log")):
        with pytest.raises(ResultsFileError, match=why):
            read_log(tmp_path / name)


def test_reading_logs_needs_neither_training_nor_torchvision():
    "The analysis of the paper's logs stands low in the import graph."
    import subprocess
    import sys
    code = "import sys, randsmooth.logs, randsmooth.analyze; print(sorted(m for m in ('torchvision', 'randsmooth.train', " \
           "'randsmooth.experiments', 'randsmooth.models') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"
