"""On the packaged model: two adapters trained by `sktune train` on different bundled tasks (SK-Prefix on
rt-polarity, SK-Prompt on trec; a few rows of each, so that the test stays short), served together by
`sktune serve`, label every text as `sktune predict` labels it with that adapter alone, probabilities
within 1e-5."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from test_serving_batching import _healthy, free_port, wait_for  # noqa: E402

TEXTS = {"rt": ["A gorgeous, witty and moving film.", "Dull, overlong and badly acted.", "It is a movie."],
         "trec": ["Who wrote Hamlet?", "How far is the Moon from the Earth?", "What is a quark?"]}


def few_rows(task_name: str, folder, per_label: int = 6) -> list[str]:
    """CSV files of a bundled task, `per_label` rows of every label per split (label names, as users write
    them), and the `sktune train` options that read them with the task's own text."""
    from sktuning.data import load_task

    task = load_task(task_name)
    for split in ("train", "validation", "test"):
        rows, seen = [], {}
        for row in task.splits[split]:
            if seen.get(row["label"], 0) < per_label:
                seen[row["label"]] = seen.get(row["label"], 0) + 1
                rows.append({"text": row["text"], "label": task.label_names[row["label"]]})
        with open(folder / f"{split}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, ["text", "label"])
            writer.writeheader()
            writer.writerows(rows)
    return ["--train", str(folder / "train.csv"), "--validation", str(folder / "validation.csv"), "--test",
            str(folder / "test.csv"), "--text", task.default_text, "--label-names", *task.label_names]


def sktune(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "sktuning.cli", *args], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.integration
@pytest.mark.subprocess
def test_adapters_of_two_bundled_tasks_served_together_answer_as_sktune_predict(tmp_path):
    runs = {"rt": ("rt-polarity", "prefix"), "trec": ("trec", "prompt")}
    for name, (task, mode) in runs.items():
        (tmp_path / f"{name}-data").mkdir()
        sktune("train", "--model", "smollm2-135m", *few_rows(task, tmp_path / f"{name}-data"), "--mode", mode,
               "--steps", "3", "--batch-size", "4", "--eval-every", "3", "--max-length", "32",
               "--output", str(tmp_path / name), "--quiet")
    alone = {}
    for name in runs:
        out = tmp_path / f"{name}.jsonl"
        sktune("predict", "--adapter", str(tmp_path / name / "adapter"), "--output-file", str(out), "--quiet",
               *TEXTS[name])
        alone[name] = [json.loads(line) for line in out.read_text().splitlines()]

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "sktuning.cli", "serve", "--port", str(port),
                               *[a for name in runs for a in ("--adapter", f"{name}={tmp_path / name / 'adapter'}")]],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url), "the server to start", timeout=300)
        for name in runs:
            answer = httpx.post(f"{url}/v1/predict", json={"adapter": name, "texts": TEXTS[name]}, timeout=120)
            assert answer.status_code == 200, answer.text
            served = answer.json()["predictions"]
            assert len(served) == len(alone[name]) == 3
            for got, want in zip(served, alone[name]):
                assert got["label"] == want["label"]
                assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
        listing = {a["name"]: a for a in httpx.get(f"{url}/v1/adapters", timeout=30).json()["adapters"]}
        assert len(listing["trec"]["labels"]) == 6 and len(listing["rt"]["labels"]) == 2
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=120)
    assert code == 0, server.stderr.read()[-2000:]
