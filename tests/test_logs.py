"""The results files: every line of a log checked when read, damaged lines named and repaired, one writer per log."""
import pytest

from randsmooth.logs import (CERTIFY_COLUMNS, PREDICT_COLUMNS, ResultsFileError, certified_accuracy, done_indices,
                             read_log, repair_log)

GOOD = "{i}\t7\t7\t0.704650\t1\t0:00:01.500000\t0.997588308\t9990\t100\t10000\t0.001\t0.25"


def write(path, *lines, columns=CERTIFY_COLUMNS):
    path.write_text("\t".join(columns) + "\n" + "".join(l + "\n" for l in lines))
    return path


def test_log_format_is_read_back_by_the_analysis(tmp_path):
    log = write(tmp_path / "log.tsv", GOOD.format(i=0),
                "1\t2\t-1\t0.000000\t0\t0:00:01.250000\t0.394815743\t4100\t100\t10000\t0.001\t0.25",
                "2\t1\t3\t0.199349\t0\t0:00:01.000000\t0.787389396\t8000\t100\t10000\t0.001\t0.25")
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
    (GOOD.format(i=0).replace("\t7\t7\t", "\t7\t3\t"), "correct is 1 but predict is 3"),
    (GOOD.format(i=0).replace("\t7\t7\t0.704650\t1", "\t7\t-1\t0.704650\t0"), "an abstention"),
    (GOOD.format(i=0).replace("\t9990\t", "\t19990\t"), "counts above n")])
def test_a_line_must_agree_with_itself(tmp_path, line, why):
    with pytest.raises(ResultsFileError, match=why):
        read_log(write(tmp_path / "log.tsv", line))


def test_an_index_logged_twice_is_damage(tmp_path):
    log = write(tmp_path / "log.tsv", GOOD.format(i=0), GOOD.format(i=1), GOOD.format(i=1))
    with pytest.raises(ResultsFileError, match="line 4: repeats line 3"):
        read_log(log)
    other = GOOD.format(i=1).replace("0:00:01.500000", "0:00:01.700000")
    log = write(tmp_path / "log2.tsv", GOOD.format(i=1), other)
    with pytest.raises(ResultsFileError, match="line 2: index 1 also at line 3, with other values"):
        read_log(log)
    assert repair_log(log) == [2, 3] and done_indices(log) == set()       # neither can be trusted


def test_predict_logs_are_checked_too(tmp_path):
    line = "0\t4\t4\t1\t0:00:00.010000\t1.13636e-07\t70\t20\t100\t0.001\t0.25"
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


def _certify_line(i, n_a, n=10_000, alpha=0.001, sigma=0.25):
    "A CERTIFY line whose bound and radius are computed here, from SciPy, apart from the package."
    from scipy.stats import beta, norm
    p = beta.ppf(alpha, n_a, n - n_a + 1)
    r = sigma * norm.ppf(float(f"{p:.9f}")) if p > 0.5 else 0.0
    return f"{i}\t7\t{7 if p > 0.5 else -1}\t{r:.6f}\t{int(p > 0.5)}\t0:00:01.000000\t{p:.9f}\t{n_a}\t100\t{n}\t{alpha}\t{sigma}"


def test_the_arithmetic_of_every_line_is_checked(tmp_path):
    "The probe's edits: a radius raised by hand, a bound that its counts do not give, an abstention that certifies."
    lines = [_certify_line(i, k) for i, k in enumerate((9990, 9500, 5200, 4100))]
    assert certified_accuracy(read_log(write(tmp_path / "ok.tsv", *lines)), [0.75]).tolist() == [0.0]
    raised = lines[:1] + [lines[1].replace(lines[1].split("\t")[3], f"{float(lines[1].split()[3]) + 0.3:.6f}")]
    with pytest.raises(ResultsFileError, match=r"line 3: radius 0.694917 is not sigma Phi\^-1\(p_a_lower\) = 0.25 Phi\^-1\(0.942908611\) = 0.394917"):
        read_log(write(tmp_path / "raised.tsv", *raised))
    for edit, why in ((lambda f: f[:6] + ["0.999000000"] + f[7:], "is not the Clopper-Pearson bound"),
                      (lambda f: f[:2] + ["-1", "0.000000", "0"] + f[5:], "predict is -1 but p_a_lower")):
        bad = "\t".join(edit(lines[0].split("\t")))
        with pytest.raises(ResultsFileError, match=why):
            read_log(write(tmp_path / "bad.tsv", bad))


def test_a_sequential_radius_must_be_the_largest_its_bound_clears(tmp_path):
    from randsmooth.logs import SEQUENTIAL_COLUMNS
    line = "3\t1\t1\t{r}\t1\t0:00:00.010000\t384\t0.934000000\t0.9999\t384\t384\t0\t100000\t0.001\t0.25\t0.25,0.5,0.75"
    assert read_log(write(tmp_path / "s.tsv", line.format(r=0.25), columns=SEQUENTIAL_COLUMNS))["radius"][0] == 0.25
    with pytest.raises(ResultsFileError, match=r"disagrees with p_lower 0.934000000: the largest radius .* is 0.25"):
        read_log(write(tmp_path / "s.tsv", line.format(r=0.5), columns=SEQUENTIAL_COLUMNS))


def test_a_predict_line_must_agree_with_its_test(tmp_path):
    line = "0\t4\t4\t1\t0:00:00.010000\t1.13636e-07\t70\t20\t100\t0.001\t0.25"
    for bad, why in ((line.replace("1.13636e-07", "1e-20"), "is not the binomial test"),
                     (line.replace("\t70\t20\t", "\t50\t40\t").replace("1.13636e-07", "0.342833"), "above alpha")):
        with pytest.raises(ResultsFileError, match=why):
            read_log(write(tmp_path / "p.tsv", bad, columns=PREDICT_COLUMNS))


def test_every_line_our_runs_wrote_passes_the_arithmetic():
    "No false alarms: all the logs in results/ (certify, sequential, predict, sound noise) are read without error."
    from pathlib import Path
    from randsmooth.logs import scan_log
    logs = [p for p in (Path(__file__).parents[1] / "results").rglob("*.tsv")
            if p.parent.parent.name in ("certify", "predict")]
    kinds = {}
    for p in logs:
        scan = scan_log(p)
        assert not scan.damaged, (p, list(scan.damaged.items())[:2])
        kinds[scan.kind] = kinds.get(scan.kind, 0) + len(scan.rows)
    assert set(kinds) == {"certify", "predict", "sequential"} and sum(kinds.values()) > 10_000, kinds
