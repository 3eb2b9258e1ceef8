"""`aekit detect`: a table and a series scored, labelled windows read, the outputs and report written, and every
bad input a one-line error that leaves what was written in place."""

import json

import numpy as np
import pytest
from test_cli import aekit_here, assert_clean_error

from aekit.detect import labels_from_windows, read_detection_data

FAST = ["--steps", "40", "hidden=16"]


def write_series(path, n=400, shift_at=300, extra=""):
    t = np.arange(n)
    values = np.sin(t / 8) + 0.05 * np.random.default_rng(0).normal(size=n)
    values[shift_at:shift_at + 10] += 3.0
    stamps = np.datetime64("2020-01-01T00:00") + t * np.timedelta64(5, "m")
    lines = ["timestamp,value" + (",other" if extra else "")]
    tail = f",{extra}" if extra else ""
    lines += [f"{str(s).replace('T', ' ')}:00,{v:.5f}{tail}" for s, v in zip(stamps, values, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return stamps


def test_a_series_is_scored_per_timestamp_with_labels_from_windows(tmp_path, capsys):
    stamps = write_series(tmp_path / "s.csv", extra="7")  # a constant second column: dropped, with a note
    windows = {"group/s.csv": [[str(stamps[298]).replace("T", " "), str(stamps[320]).replace("T", " ")]]}
    (tmp_path / "w.json").write_text(json.dumps(windows))
    result = aekit_here(capsys, "detect", tmp_path / "s.csv", "--out", tmp_path / "run", "--window", "16",
                        "--train-fraction", "0.5", "--labels", tmp_path / "w.json", *FAST)
    assert result.returncode == 0, result.stderr
    assert "constant column(s) dropped: other" in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["detect/rows"] == 400 and metrics["detect/train_rows"] == 200
    assert metrics["detect/roc_auc"] > 0.8
    rows = (tmp_path / "run" / "scores.csv").read_text().splitlines()
    assert rows[0] == "timestamp,score,anomaly,label" and len(rows) == 401
    assert rows[1].startswith("2020-01-01 00:00:00,") and rows[300].endswith(",1")
    assert {p.name for p in (tmp_path / "run" / "figures").iterdir()} == {"scores.png", "score_histograms.png",
                                                                          "roc_pr.png"}
    page = (tmp_path / "run" / "report.html").read_text()
    assert "ROC-AUC of the scores against the labels" in page and "scores.png" in page
    assert "Not produced for this run" not in page  # a training run's figures are not missing from a detector's
    again = aekit_here(capsys, "detect", tmp_path / "s.csv", "--out", tmp_path / "run", *FAST)
    assert_clean_error(again, "already holds scores.csv")
    assert len((tmp_path / "run" / "scores.csv").read_text().splitlines()) == 401  # not overwritten


def test_a_table_with_a_label_column_is_scored_per_row(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = np.zeros(300, int)
    x[:15] += 6
    y[:15] = 1
    lines = ["a,b,c,d,label"] + [",".join(f"{v:.4f}" for v in row) + f",{k}" for row, k in zip(x, y, strict=True)]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    result = aekit_here(capsys, "detect", tmp_path / "t.csv", "--out", tmp_path / "run", "--model", "vae",
                        "--contamination", "0.05", "latent_dim=2", *FAST)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["detect/roc_auc"] > 0.9 and metrics["detect/train_rows"] == 300
    assert (tmp_path / "run" / "scores.csv").read_text().splitlines()[0] == "row,score,anomaly,label"
    np.savez(tmp_path / "t.npz", X=x, y=y)
    data = read_detection_data(tmp_path / "t.npz")
    assert data.values.shape == (300, 4) and data.labels.sum() == 15 and not data.is_series


@pytest.mark.parametrize("content,args,fragment", [
    ("a,b\n1,2\n3,\n4,5\n", [], "NaN, Inf or empty values in column(s) b"),
    ("a,b\n1,2\n3,x\n", [], "column 'b', data row 2: 'x' is not a number"),
    ("timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:00:00,2\n", [], "data row 2 (2020-01-01 00:00:00) repeats"),
    ("timestamp,value\n2020-01-02,1\n2020-01-01,2\n", [], "is earlier than the one before"),
    ("timestamp,value\n2020-01-01,1\n2020-01-02,2\n2020-01-03,3\n", ["--window", "8"],
     "fewer than the window of 8"),
    ("a,b\n1,2\n3,4\n", ["--contamination", "0.7"], "contamination=0.7 must lie in (0, 0.5]"),
    ("a,b\n1,2\n1,2\n", [], "every column is constant"),
    ("a,label\n1,0\n2,3\n", [], "holds values other than 0 and 1"),
    ("a,b\n1,2\n3\n", [], "line 3 has 1 fields, the header 2"),
])
def test_bad_input_is_a_one_line_error(tmp_path, capsys, content, args, fragment):
    (tmp_path / "d.csv").write_text(content)
    result = aekit_here(capsys, "detect", tmp_path / "d.csv", "--out", tmp_path / "run", *args, *FAST)
    assert_clean_error(result, fragment)
    assert not (tmp_path / "run" / "scores.csv").exists()


def test_windows_that_are_not_for_the_file_are_refused(tmp_path, capsys):
    write_series(tmp_path / "s.csv", n=100)
    data = read_detection_data(tmp_path / "s.csv")
    (tmp_path / "w.json").write_text(json.dumps({"x/s.csv": [["2021-01-01 00:00:00", "2021-01-02 00:00:00"]]}))
    with pytest.raises(Exception, match="lies outside s.csv"):
        labels_from_windows(tmp_path / "w.json", data)
    (tmp_path / "w.json").write_text(json.dumps({"x/other.csv": []}))
    result = aekit_here(capsys, "detect", tmp_path / "s.csv", "--out", tmp_path / "run", "--labels",
                        tmp_path / "w.json", "--window", "8", *FAST)
    assert_clean_error(result, "no entry for s.csv")
    assert_clean_error(aekit_here(capsys, "detect", tmp_path / "none.csv", "--out", tmp_path / "r2"), "no such file")


def test_anomaly_likelihood_by_hand_online_and_fading_for_a_lasting_shift():
    from scipy.stats import norm

    from aekit.detect import anomaly_likelihood

    rng = np.random.default_rng(0)
    s = np.concatenate([rng.normal(1.0, 0.1, 300), np.full(300, 3.0)])
    raw = anomaly_likelihood(s, long_window=100, short_window=5, log_scale=False)
    t = 310  # the statistics of rows 211..310 and 306..310, by hand
    mean, sd, recent = s[211:311].mean(), s[211:311].std(), s[306:311].mean()
    assert raw[t] == pytest.approx(norm.cdf((recent - mean) / sd), rel=1e-6)
    assert raw[302] > 0.99 and raw[590] < 0.9  # high at the change, lower once the long window holds the new level
    changed = s.copy()
    changed[400:] = -5
    np.testing.assert_array_equal(anomaly_likelihood(changed, 100, 5)[:400], anomaly_likelihood(s, 100, 5)[:400])
    spread = anomaly_likelihood(s, 100, 5)
    assert spread.min() >= 0 and spread.max() <= 1 + 1e-9
