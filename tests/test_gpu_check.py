"""benchmarks/gpu_check.sh's pieces that decide its numbers: the bf16 peak behind MFU and the
data-wait summary of the training run (the script itself runs end to end with --cpu --tiny)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

from gpu_mfu import peak_tflops  # noqa: E402
from gpu_report import markdown, training_summary  # noqa: E402


def test_peak_by_device_name_with_an_override():
    assert peak_tflops("NVIDIA H200", None) == 989.0
    assert peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB", None) == 312.0
    assert peak_tflops("NVIDIA L4", None) is None  # unknown: MFU is left out, not guessed
    assert peak_tflops("NVIDIA H200", 500.0) == 500.0


def test_training_summary_leaves_out_the_first_window(tmp_path):
    rows = [
        {"step": 10, "pairs_per_s": 100.0, "data_wait_frac": 0.9},  # workers starting
        {"step": 20, "pairs_per_s": 1000.0, "data_wait_frac": 0.1},
        {"step": 30, "pairs_per_s": 1200.0, "data_wait_frac": 0.3},
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    summary = training_summary(tmp_path)
    assert summary == {
        "steps": 30,
        "windows": 2,
        "pairs_per_s": 1100.0,
        "data_wait_frac": 0.2,
        "busy_frac": 0.8,
    }
    table = markdown({"training": summary})
    assert "| training | loop waiting for data (share of wall time) | 0.2 |" in table
