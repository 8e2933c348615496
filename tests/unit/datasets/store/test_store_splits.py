from datasets.store.splits import scene_splits


def test_scene_splits_prefers_semantic_lists(tmp_path):
    assert scene_splits(tmp_path) == {}
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "nvs_sem_train.txt").write_text("aaa\nbbb\n")
    (splits / "nvs_sem_val.txt").write_text("ccc\n\n")
    (splits / "nvs_test_iphone.txt").write_text("ccc\nddd\n")
    assert scene_splits(tmp_path) == {"aaa": "train", "bbb": "train", "ccc": "val", "ddd": "nvs_test_iphone"}
