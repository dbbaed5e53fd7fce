import pytest

from avs.errors import InputError
from avs.formats.shots import (
    drop_shots,
    dropped_shots,
    is_shot_id,
    natural_key,
    natural_sorted,
    parse_shot_id,
    read_id_list,
)


@pytest.mark.parametrize(
    "sid, expected",
    [
        ("shot00001_1", (1, 1)),  # V3C: zero-padded video number
        ("shot07475_4969", (7475, 4969)),
        ("shot35345_1", (35345, 1)),  # IACC.3: unpadded
    ],
)
def test_parse_shot_id(sid, expected):
    assert parse_shot_id(sid) == expected
    assert is_shot_id(sid)


@pytest.mark.parametrize("bad", ["shot00001", "shot_1_2", "Shot00001_1", "shot00001_1 ", "00001_1", "shota_1", ""])
def test_parse_shot_id_rejects(bad):
    with pytest.raises(ValueError):
        parse_shot_id(bad)
    assert not is_shot_id(bad)


def test_natural_sort_orders_by_video_then_shot():
    ids = ["shot00002_1", "shot00001_10", "shot00001_2", "shot00001_1", "shot35345_1", "shot00010_1"]
    assert natural_sorted(ids) == [
        "shot00001_1",
        "shot00001_2",
        "shot00001_10",
        "shot00002_1",
        "shot00010_1",
        "shot35345_1",
    ]
    # plain string order would put _10 before _2
    assert sorted(ids)[1] == "shot00001_10"


def test_natural_key_total_on_mixed_ids():
    ids = ["vid10", "vid9", "abc", "shot1_1", "shot001_1", "9x"]
    out = natural_sorted(ids)
    assert out.index("vid9") < out.index("vid10")
    assert natural_key("shot1_1") != natural_key("shot001_1")  # distinct spellings stay distinct


def test_dropped_shots_shipped_list():
    dropped = dropped_shots("V3C1")
    assert len(dropped) == 8
    assert {"shot05037_1", "shot01083_1"} <= dropped
    assert drop_shots(["shot05037_1", "shot05037_2", "shot01083_1"], dropped) == ["shot05037_2"]
    with pytest.raises(InputError, match="no dropped-shots list"):
        dropped_shots("IACC.3")


def test_read_id_list(tmp_path):
    p = tmp_path / "list.txt"
    p.write_text("# comment\nshot00001_1\n\nshot00001_2 shot00002_1\n")
    assert read_id_list(p, shot_ids=True) == ["shot00001_1", "shot00001_2", "shot00002_1"]
    p.write_text("shot00001_1\nvideo7\n")
    with pytest.raises(InputError) as e:
        read_id_list(p, shot_ids=True)
    assert str(e.value) == f"{p}:2: 'video7' is not a shot id (shot<VIDEO>_<N>)"
    assert read_id_list(p) == ["shot00001_1", "video7"]
    p.write_text("a\nb\n# not an id\nb\n")
    with pytest.raises(InputError) as e:
        read_id_list(p, unique=True)
    assert str(e.value) == f"{p}:4: id 'b' appears twice"
    assert read_id_list(p) == ["a", "b", "b"]
    with pytest.raises(InputError, match="No such file or directory"):
        read_id_list(tmp_path / "nope")


def test_shots_to_exclude(tmp_path):
    from avs.formats.shots import shots_to_exclude

    assert len(shots_to_exclude("V3C1")) == 8 and "shot05037_1" in shots_to_exclude("V3C1")
    p = tmp_path / "list.txt"
    p.write_text("shot00001_1\nshot00002_3\n")
    assert shots_to_exclude(p) == {"shot00001_1", "shot00002_3"}
    with pytest.raises(InputError, match="No such file"):
        shots_to_exclude(tmp_path / "V3C2")
