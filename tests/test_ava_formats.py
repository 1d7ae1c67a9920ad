"""AVA files: read, written back, and malformed rows reported with file, line and reason."""

import os
import pickle

import numpy as np
import pytest

from vidrec.data.ava import (
    ActionLabel,
    AvaBox,
    FrameListEntry,
    action_groups,
    proposals_to_boxes,
    read_boxes,
    read_excluded,
    read_frame_list,
    read_label_map,
    read_proposals,
    write_boxes,
    write_frame_list,
    write_label_map,
)
from vidrec.errors import AnnotationError

AVA_LABELS = """label {
  name: "bend/bow (at the waist)"
  label_id: 1
  label_type: PERSON_MOVEMENT
}
label {
  name: "carry/hold (an object)"
  label_id: 17
  label_type: OBJECT_MANIPULATION
}
"""


def test_ground_truth_and_detections_round_trip(tmp_path):
    truth = [
        AvaBox("-5KQ66BBWC4", 902, (0.077, 0.151, 0.283, 0.811), 80, 1),
        AvaBox("v", 1798, (0, 0, 1, 1), 1, 0),
    ]
    write_boxes(tmp_path / "gt.csv", truth, kind="gt")
    assert (tmp_path / "gt.csv").read_text().splitlines()[
        0
    ] == "-5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,80,1"
    assert read_boxes(tmp_path / "gt.csv", kind="gt") == truth
    dets = [AvaBox("v", 902, (0.1, 0.2, 0.3, 0.4), 12, None, 0.123456)]
    write_boxes(tmp_path / "det.csv", dets, kind="detections")
    assert read_boxes(tmp_path / "det.csv", kind="detections") == dets
    assert dets[0].key == "v,0902"


def test_person_boxes_with_an_empty_action_column(tmp_path):
    path = tmp_path / "boxes.csv"
    path.write_text("v,0902,0.1,0.2,0.3,0.4,,0.98\nv,0903,0.1,0.2,0.3,0.4,0.5\n")
    rows = read_boxes(path, kind="boxes")
    assert [(r.action_id, r.score) for r in rows] == [(None, 0.98), (None, 0.5)]


@pytest.mark.parametrize(
    "row, reason",
    [
        ("v,0902,0.1,0.2,0.3", "expected 7 or 8 columns"),
        ("v,0902,0.1,abc,0.3,0.4,1,0", "y1 'abc' is not a number"),
        ("v,0902,12,20,300,400,1,0", "x1 = 12.0 is outside [0, 1]: AVA boxes are normalised, not pixels"),
        ("v,0902,0.5,0.2,0.3,0.4,1,0", "x2 < x1"),
        ("v,0902.5,0.1,0.2,0.3,0.4,1,0", "not a whole second"),
        ("v,0902,0.1,0.2,0.3,0.4,,0", "empty action_id"),
        ("v,0902,0.1,0.2,0.3,0.4,walk,0", "action_id 'walk' is not an integer"),
        (",0902,0.1,0.2,0.3,0.4,1,0", "empty video_id"),
    ],
)
def test_malformed_rows_name_file_line_and_reason(tmp_path, row, reason):
    path = tmp_path / "gt.csv"
    path.write_text("v,0902,0.1,0.2,0.3,0.4,1,0\n" + row + "\n")
    with pytest.raises(AnnotationError) as err:
        read_boxes(path, kind="gt")
    assert str(err.value).startswith(f"{path}:2: ") and reason in str(err.value)


def test_missing_and_binary_files_are_one_line_errors(tmp_path):
    with pytest.raises(AnnotationError, match="cannot read"):
        read_boxes(tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(AnnotationError, match="cannot read"):
        read_boxes(tmp_path / "bin.csv")


def test_label_maps_in_both_layouts(tmp_path):
    (tmp_path / "ava.pbtxt").write_text(AVA_LABELS)
    labels = read_label_map(tmp_path / "ava.pbtxt")
    assert labels == [
        ActionLabel(1, "bend/bow (at the waist)", "PERSON_MOVEMENT"),
        ActionLabel(17, "carry/hold (an object)", "OBJECT_MANIPULATION"),
    ]
    (tmp_path / "item.pbtxt").write_text(
        'item {\n  name: "stand"\n  id: 11\n}\nitem { name: "sit" id: 12 }\n'
    )
    assert [(x.id, x.name) for x in read_label_map(tmp_path / "item.pbtxt")] == [(11, "stand"), (12, "sit")]
    write_label_map(tmp_path / "out.pbtxt", labels)
    assert read_label_map(tmp_path / "out.pbtxt") == labels
    # the official evaluator's reader keys on two-space-indented "  name:" / "  label_id:" lines
    lines = (tmp_path / "out.pbtxt").read_text().splitlines()
    assert '  name: "bend/bow (at the waist)"' in lines and "  label_id: 17" in lines


def test_label_map_errors(tmp_path):
    (tmp_path / "dup.pbtxt").write_text('label { name: "a" label_id: 1 }\nlabel { name: "b" label_id: 1 }\n')
    with pytest.raises(AnnotationError, match=r"dup.pbtxt:2: id 1 is used twice \('a', 'b'\)"):
        read_label_map(tmp_path / "dup.pbtxt")
    (tmp_path / "empty.pbtxt").write_text("nothing here\n")
    with pytest.raises(AnnotationError, match="no labels found"):
        read_label_map(tmp_path / "empty.pbtxt")


def test_action_groups_from_label_type_or_ava_ranges():
    typed = [
        ActionLabel(1, "a", "PERSON_MOVEMENT"),
        ActionLabel(2, "b", "PERSON_MOVEMENT"),
        ActionLabel(3, "c", "X"),
    ]
    assert action_groups(typed) == {"PERSON_MOVEMENT": [1, 2], "X": [3]}
    ava = [ActionLabel(i, str(i)) for i in (1, 14, 15, 63, 64, 80)]
    assert action_groups(ava) == {
        "PERSON_MOVEMENT": [1, 14],
        "OBJECT_MANIPULATION": [15, 63],
        "PERSON_INTERACTION": [64, 80],
    }
    assert action_groups([ActionLabel(81, "x")]) == {}


def test_excluded_timestamps(tmp_path):
    (tmp_path / "excl.csv").write_text("v,0902\nw,1798\n")
    assert read_excluded(tmp_path / "excl.csv") == {"v,0902", "w,1798"}
    (tmp_path / "bad.csv").write_text("v,0902,1\n")
    with pytest.raises(AnnotationError, match="bad.csv:1: expected 2 columns"):
        read_excluded(tmp_path / "bad.csv")


def test_frame_lists(tmp_path):
    entries = [FrameListEntry("vid", 0, i, f"vid/vid_{i + 1:06d}.jpg") for i in (1, 0, 2)]
    write_frame_list(tmp_path / "train.csv", entries)
    assert (tmp_path / "train.csv").read_text().startswith("original_vido_id video_id frame_id path labels\n")
    assert read_frame_list(tmp_path / "train.csv") == {"vid": [f"vid/vid_{i:06d}.jpg" for i in (1, 2, 3)]}


def test_proposals_load_arrays_and_refuse_code(tmp_path):
    props = {"v,0902": np.array([[0.1, 0.2, 0.5, 0.9, 0.99], [0.0, 0.0, 0.2, 0.2, 0.3]], dtype=np.float32)}
    with open(tmp_path / "dense.pkl", "wb") as f:
        pickle.dump(props, f)
    loaded = read_proposals(tmp_path / "dense.pkl")
    np.testing.assert_allclose(loaded["v,0902"], props["v,0902"])
    rows = proposals_to_boxes(loaded, min_score=0.5)
    assert len(rows) == 1 and rows[0].key == "v,0902" and rows[0].score == pytest.approx(0.99)

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"v,0902": Evil()}, f)
    with pytest.raises(AnnotationError, match="refused to load .*system"):
        read_proposals(tmp_path / "evil.pkl")
    assert not marker.exists()
    with open(tmp_path / "list.pkl", "wb") as f:
        pickle.dump([1, 2], f)
    with pytest.raises(AnnotationError, match="expected a dict"):
        read_proposals(tmp_path / "list.pkl")
