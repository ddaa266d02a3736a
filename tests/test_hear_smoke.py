"""The HEAR benchmark scripts (benchmarks/hear/) without the HEAR tools: the
smoke tasks follow the hearpreprocess layout heareval reads, the random
published-layout checkpoint has exactly the published keys and loads, and
run.py parses and tabulates heareval's score files. The full pipeline runs in
benchmarks/hear/ci.sh, inside the evaluation venv."""
import importlib.util
import json
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import kwmlp

HEAR_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "hear"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"hear_{name}", HEAR_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


make_smoke_tasks = _load("make_smoke_tasks")
make_random_checkpoint = _load("make_random_checkpoint")
run = _load("run")


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tasks")
    make_smoke_tasks.main(["--out", str(out), "--seed", "0"])
    return out


def _read_wav(path):
    with wave.open(str(path)) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 16000)
        return np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")


def test_smoke_tasks_follow_hearpreprocess_layout(tasks_dir):
    tasks = run.find_tasks(tasks_dir)
    assert [t.name for t in tasks] == ["smoke_events-v1-full", "smoke_scene-v1-full"]
    for task in tasks:
        metadata = json.loads((task / "task_metadata.json").read_text())
        assert task.name == f"{metadata['task_name']}-{metadata['version']}-{metadata['mode']}"
        assert metadata["split_mode"] == "trainvaltest"
        assert metadata["splits"] == ["train", "valid", "test"]
        vocab = (task / "labelvocabulary.csv").read_text().splitlines()
        assert vocab[0] == "idx,label"
        labels = {line.split(",")[1] for line in vocab[1:]}
        assert [line.split(",")[0] for line in vocab[1:]] == [str(i) for i in range(len(labels))]
        n_samples = int(metadata["sample_duration"] * 16000)
        for split in metadata["splits"]:
            split_labels = json.loads((task / f"{split}.json").read_text())
            wavs = sorted(p.name for p in (task / "16000" / split).iterdir())
            assert sorted(split_labels) == wavs and wavs
            for name, file_labels in split_labels.items():
                assert len(_read_wav(task / "16000" / split / name)) == n_samples
                if metadata["embedding_type"] == "scene":
                    assert metadata["prediction_type"] == "multiclass"
                    assert len(file_labels) == 1 and file_labels[0] in labels
                else:
                    assert metadata["prediction_type"] == "multilabel"
                    assert file_labels, "every event clip holds at least one event"
                    ends_ms = [0.0]
                    for event in file_labels:  # ms, in order, not overlapping
                        assert event["label"] in labels
                        assert ends_ms[-1] < event["start"] < event["end"]
                        assert event["end"] <= 1000 * metadata["sample_duration"]
                        ends_ms.append(event["end"])


def test_smoke_event_audio_is_louder_inside_events(tasks_dir):
    task = tasks_dir / "smoke_events-v1-full"
    for name, events in json.loads((task / "valid.json").read_text()).items():
        audio = _read_wav(task / "16000" / "valid" / name).astype(np.float64)
        inside = np.zeros(len(audio), dtype=bool)
        for event in events:
            inside[int(event["start"] * 16):int(event["end"] * 16)] = True
        assert np.sqrt(np.mean(audio[inside] ** 2)) > 3 * np.sqrt(np.mean(audio[~inside] ** 2))


def test_smoke_tasks_are_fixed_by_the_seed(tmp_path, tasks_dir):
    def digest(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file()}

    make_smoke_tasks.main(["--out", str(tmp_path / "same"), "--seed", "0"])
    make_smoke_tasks.main(["--out", str(tmp_path / "other"), "--seed", "1"])
    assert digest(tmp_path / "same") == digest(tasks_dir)
    assert digest(tmp_path / "other") != digest(tasks_dir)


def test_random_published_checkpoint_has_the_published_keys(tmp_path):
    path = tmp_path / "kwmlp.pth"
    make_random_checkpoint.main(["--layout", "published", "--out", str(path)])
    state = torch.load(path, map_location="cpu", weights_only=True)["model_state_dict"]
    shapes = {"to_patch_embed.1.weight": (64, 40), "to_patch_embed.1.bias": (64,),
              "to_logits.0.weight": (64,), "to_logits.0.bias": (64,),
              "to_logits.2.weight": (35, 64), "to_logits.2.bias": (35,)}
    for i in range(12):
        block = f"layers.{i}.fn"
        shapes.update({
            f"{block}.norm.weight": (64,), f"{block}.norm.bias": (64,),
            f"{block}.fn.proj_in.0.weight": (256, 64), f"{block}.fn.proj_in.0.bias": (256,),
            f"{block}.fn.sgu.norm.weight": (128,), f"{block}.fn.sgu.norm.bias": (128,),
            f"{block}.fn.sgu.proj.weight": (98, 98, 1), f"{block}.fn.sgu.proj.bias": (98,),
            f"{block}.fn.proj_out.weight": (64, 128), f"{block}.fn.proj_out.bias": (64,),
        })
    assert {k: tuple(v.shape) for k, v in state.items()} == shapes

    model = kwmlp.load_model(str(path), device="cpu")
    emb, times_ms = kwmlp.get_timestamp_embeddings(torch.zeros(1, 16000), model)
    assert emb.shape == (1, 100, 64) and times_ms.shape == (1, 100)


def test_random_kwmlp_checkpoint_loads(tmp_path):
    path = tmp_path / "kwmlp.pt"
    make_random_checkpoint.main(["--layout", "kwmlp", "--out", str(path)])
    model = kwmlp.load_model(str(path), device="cpu")
    assert kwmlp.get_scene_embeddings(torch.zeros(2, 8000), model).shape == (2, 1024)


def test_run_parse_args(tmp_path):
    args = run.parse_args(["--tasks-dir", str(tmp_path), "--model-options", '{"layer": 4}'])
    assert (args.grid, args.grid_points, args.resume) == ("faster", 1, False)
    assert args.venv == run.REPO_DIR / ".hear-venv"
    assert args.out.parent == run.REPO_DIR / "runs" / "hear"
    for bad in (["--model-options", "[4]"], ["--model-options", "{"], ["--grid", "huge"],
                ["--grid-points", "0"], []):
        with pytest.raises(SystemExit):
            run.parse_args((["--tasks-dir", str(tmp_path)] if bad else []) + bad)


def _fake_predictions(task_dir, evaluation, results):
    task_dir.mkdir(parents=True)
    (task_dir / "task_metadata.json").write_text(json.dumps({"evaluation": evaluation}))
    (task_dir / "test.predicted-scores.json").write_text(json.dumps(results))
    (task_dir / "profile.embeddings.json").write_text(json.dumps({"time_elapsed": 12.34}))


def test_read_scores_trainvaltest_and_kfold(tmp_path):
    _fake_predictions(tmp_path / "events", ["event_onset_200ms_fms", "segment_1s_er"],
                      {"test": {"test_event_onset_200ms_fms": 0.9, "test_segment_1s_er": 0.1,
                                "test_event_onset_200ms_fms_precision": 0.8}})
    _fake_predictions(tmp_path / "folds", ["top1_acc"],
                      {"fold00": {"test_top1_acc": 0.5}, "fold01": {"test_top1_acc": 0.7},
                       "aggregated_scores": {"test_top1_acc_mean": 0.6,
                                             "test_top1_acc_std": 0.1414}})
    rows = run.read_scores(tmp_path / "events") + run.read_scores(tmp_path / "folds")
    assert [(r.task, r.metric, r.score, r.score_std, r.embedding_time_s) for r in rows] == [
        ("events", "event_onset_200ms_fms", 0.9, None, 12.34),
        ("events", "segment_1s_er", 0.1, None, 12.34),
        ("folds", "top1_acc", 0.6, 0.1414, 12.34),
    ]
    table = run.format_table(rows).splitlines()
    assert table[0].split() == ["task", "metric", "score", "embedding", "time", "(s)"]
    assert table[2].split() == ["events", "event_onset_200ms_fms", "0.9000", "12.3"]
    assert table[4].split() == ["folds", "top1_acc", "0.6000", "±", "0.1414", "12.3"]
    run.write_scores(rows, tmp_path)
    assert json.loads((tmp_path / "scores.json").read_text())[2]["score_std"] == 0.1414


def test_launcher_makes_fit_loop_epoch_settable():
    pytest.importorskip("pytorch_lightning")
    launcher = _load("launcher")
    launcher.patch_fit_loop_current_epoch()
    launcher.patch_fit_loop_current_epoch()  # idempotent
    from pytorch_lightning import Trainer

    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)
    trainer.fit_loop.current_epoch = 7
    assert trainer.current_epoch == 7
    assert trainer.fit_loop.epoch_progress.current.completed == 7
