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
    assert "constant column(s) dropped: other" in result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["detect/rows"] == 400 and metrics["detect/train_rows"] == 200
    assert metrics["detect/roc_auc"] > 0.8
    rows = (tmp_path / "run" / "scores.csv").read_text().splitlines()
    assert rows[0] == "timestamp,score,anomaly,label" and len(rows) == 401
    assert rows[1].startswith("2020-01-01 00:00:00,") and rows[300].endswith(",1")
    assert {p.name for p in (tmp_path / "run" / "figures").iterdir()} == {"scores.png", "score_histograms.png",
                                                                          "roc_pr.png", "attributions.png"}
    explained = (tmp_path / "run" / "attributions.csv").read_text().splitlines()
    assert explained[0] == "timestamp,score,method,value" and len(explained) == 1 + 2 * 8
    top = [line.split(",") for line in explained[1:] if ",recon-error," in line]
    assert all(row[0] >= str(stamps[300]).replace("T", " ") for row in top[:3])  # the shift's rows come first
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
    ("a,b\n1,2\n3,x\n", [], "line 3, column 'b': 'x' is not a number"),
    ("timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:00:00,2\n", ["--strict"],
     "line 3 (2020-01-01 00:00:00) repeats"),
    ("timestamp,value\n2020-01-02,1\n2020-01-01,2\n", ["--strict"], "is earlier than the one before"),
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


def test_the_default_budget_follows_the_rows_and_says_so(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(300, 3))
    (tmp_path / "t.csv").write_text("a,b,c\n" + "".join(f"{r[0]:.3f},{r[1]:.3f},{r[2]:.3f}\n" for r in x))
    result = aekit_here(capsys, "detect", tmp_path / "t.csv", "--out", tmp_path / "run", "hidden=8")
    assert result.returncode == 0, result.stderr
    assert "training 100 steps: 20 epochs of the 300 training rows, 100 to 1000 steps (--steps N sets it)" in \
        result.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["detect/steps"] == 100


def test_text_labels_are_read_as_train_reads_them_and_rows_are_named_by_their_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    words = np.where(np.arange(200) < 10, "Anomaly", "normal")
    (tmp_path / "t.csv").write_text("a,b,c,label\n" + "".join(
        f"{r[0]:.3f},{r[1]:.3f},{r[2]:.3f},{w}\n" for r, w in zip(x, words, strict=True)))
    data = read_detection_data(tmp_path / "t.csv")
    assert data.labels.sum() == 10 and data.labels[:10].all() and data.columns == ["a", "b", "c"]
    assert data.notes[0] == ("labels from column 'label' ('Anomaly' as 1, 'normal' as 0), not a feature "
                             "(--label-column names another)")
    (tmp_path / "bad.csv").write_text("a,label\n1,cat\n2,normal\n3,dog\n")
    result = aekit_here(capsys, "detect", tmp_path / "bad.csv", "--out", tmp_path / "run", *FAST)
    assert_clean_error(result, "column 'label' holds 'cat', 'dog', which are not 0/1 labels; write 1 (or anomaly")
    # a bad cell: train and detect name the same line of the file
    (tmp_path / "x.csv").write_text("a,b\n1,2\n\n3,x\n4,5\n")
    for command in (["train", "ae", "--data"], ["detect"]):
        result = aekit_here(capsys, *command, tmp_path / "x.csv", "--out", tmp_path / "run2", *FAST)
        assert result.returncode != 0 and "line 4, column 'b'" in result.stderr, result.stderr


def test_a_series_whose_time_steps_back_is_scored_in_file_order_after_a_note(tmp_path, capsys):
    """As NAB scores its own realKnownCause/machine_temperature_system_failure.csv, whose timestamps step back."""
    write_series(tmp_path / "s.csv", n=200)
    lines = (tmp_path / "s.csv").read_text().splitlines()
    lines[101], lines[102] = lines[102], lines[101]  # lines 102 and 103 swapped: line 103 is earlier
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    result = aekit_here(capsys, "detect", tmp_path / "s.csv", "--out", tmp_path / "run", "--window", "8", *FAST)
    assert result.returncode == 0, result.stderr
    assert "line 103 (" in result.stderr and "is earlier than the one before" in result.stderr
    assert "scored in file order, as NAB does (--strict refuses such a file)" in result.stderr
    assert len((tmp_path / "run" / "scores.csv").read_text().splitlines()) == 201  # every row scored


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


def test_images_in_an_npz_are_scored_and_the_top_scores_explained(tmp_path, capsys):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * 16).clip(0, 255).astype(np.uint8)  # [N, 8, 8], 8-bit: scaled by 1/255
    images[:10, :3, :3] = 255  # pasted squares: the anomalies
    y = np.zeros(len(images), int)
    y[:10] = 1
    np.savez(tmp_path / "img.npz", X=images, y=y)
    data = read_detection_data(tmp_path / "img.npz")
    assert data.values.shape == (1797, 1, 8, 8) and data.is_images and data.values.max() == 1.0
    result = aekit_here(capsys, "detect", tmp_path / "img.npz", "--out", tmp_path / "run", "--model", "ce-vae",
                        "--steps", "150", "channels=[8,16]")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["detect/roc_auc"] > 0.9
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["kind"] == "images"
    assert {p.name for p in (tmp_path / "run" / "figures").iterdir()} >= {"explanations.png", "roc_pr.png"}
    page = (tmp_path / "run" / "report.html").read_text()
    assert "explanations.png" in page and "integrated-gradients attribution" in page


def test_a_tables_top_rows_get_feature_attributions_that_sum_to_their_scores(tmp_path):
    from aekit.detect import detect

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    x[:5, 2] += 8.0  # anomalies in feature c alone
    lines = ["a,b,c,d,e"] + [",".join(f"{v:.5f}" for v in row) for row in x]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    result = detect(tmp_path / "t.csv", "ae", tmp_path / "run", steps=200, hidden=(16,), latent_dim=2)
    table = (tmp_path / "run" / "attributions.csv").read_text().splitlines()
    assert table[0] == "row,score,method,a,b,c,d,e" and len(table) == 1 + 2 * 8
    shares = [line.split(",") for line in table[1:] if ",recon-error," in line]
    for row in shares:  # the reconstruction shares add up to the row's score, and c carries the top rows
        assert sum(map(float, row[3:])) == pytest.approx(float(row[1]), rel=1e-4)
    assert {int(r[0]) for r in shares[:5]} == set(range(5))
    assert all(np.argmax([float(v) for v in r[3:]]) == 2 for r in shares[:5])
    assert result.scores.shape == (300,)
    assert (tmp_path / "run" / "figures" / "attributions.png").is_file()


def test_the_one_class_protocol_from_the_command_line(tmp_path, capsys):
    result = aekit_here(capsys, "detect", "digits", "--normal-class", "0", "--out", tmp_path / "run",
                        "--model", "ae", "--steps", "150", "channels=[8,16]", "--no-explain")
    assert result.returncode == 0, result.stderr
    assert "trained on the" in result.stderr and "images of class '0'" in result.stderr  # notes go to stderr
    assert "trained on the" not in result.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["detect/roc_auc"] > 0.9 and metrics["detect/rows"] == 359
    assert not (tmp_path / "run" / "figures" / "explanations.png").exists()
    for args, fragment in [(["--normal-class", "12"], "normal class 12 is out of range"),
                           (["--normal-class", "bird"], "no class named 'bird'"),
                           (["--normal-class", "1", "--train-fraction", "0.5"], "drop labels and train_fraction")]:
        assert_clean_error(aekit_here(capsys, "detect", "digits", *args, "--out", tmp_path / "r2"), fragment)


def test_images_with_nan_pixels_or_bad_shapes_are_refused(tmp_path, capsys):
    images = np.random.default_rng(0).random((20, 8, 8))
    images[7, 3, 3] = np.nan
    np.savez(tmp_path / "nan.npz", X=images)
    assert_clean_error(aekit_here(capsys, "detect", tmp_path / "nan.npz", "--out", tmp_path / "r"),
                       "NaN or Inf pixels in 1 image(s), the first at index 7")
    np.savez(tmp_path / "thin.npz", X=np.zeros((20, 5, 1, 3)))
    assert_clean_error(aekit_here(capsys, "detect", tmp_path / "thin.npz", "--out", tmp_path / "r"),
                       "is not a stack of images")


def test_an_npz_says_which_arrays_it_scored(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", X=rng.random((20, 3)), y=(np.arange(20) % 5 == 0).astype(int))
    np.savez(tmp_path / "u.npz", X=rng.random((20, 3)))
    assert "scored array X 20x3, with y as the 0/1 labels" in read_detection_data(tmp_path / "t.npz").notes
    assert "scored array X 20x3 (no y: no labels)" in read_detection_data(tmp_path / "u.npz").notes
