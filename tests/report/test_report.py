"""The HTML build report: self-contained, well-formed, escaped, and showing what matters."""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from edgepack.report import render_report, write_report
from edgepack.report.sections import rank_layers

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
EVIL = "<script>alert(1)</script>"


def full_manifest() -> dict:
    layers = [{"tensor": f"t{i}", "op": "CONV_2D", "origin": f"Conv_{i}", "snr_db": 40.0 - i,
               "added_db": 0.5, "cosine": 0.9999, "float": False} for i in range(12)]
    layers[5].update(tensor="conv3_out", origin="conv3", added_db=9.7, snr_db=22.0)  # the culprit
    layers[7].update(tensor="conv4_out", float=True, added_db=2.0)
    return {
        "model": {"name": "resnet", "version": "1", "source_sha256": "ab" * 32, "opsets": {"ai.onnx": 13}},
        "created": "2026-11-29T21:00:00+00:00",
        "tools": {"edgepack": "0.1.0", "onnx": "1.19", "onnxruntime": "1.23", "ai-edge-litert": "2.0", "numpy": "2.4"},
        "inputs": [{"name": "x", "shape": [1, 3, 224, 224], "dtype": "float32", "layout": "NCHW"}],
        "outputs": [{"name": "y", "shape": [1, 1000], "dtype": "float32", "layout": None}],
        "calibration": {"kind": "npz", "source": "calib.npz", "calib": 80, "holdout": 20, "synthetic": False,
                        "warnings": []},
        "targets": [
            {"name": "cpu", "format": "tflite", "file": "models/cpu/model.tflite", "precision": "int8",
             "info": {"size": 1234567, "ops": 79, "op_histogram": {"CONV_2D": 53, "ADD": 16, "MEAN": 1},
                      "convert_seconds": 1.2, "fp32_size": 4567890},
             "parity": {"passed": True, "data": "holdout", "samples": 20, "backend": "litert",
                        "thresholds": {"min_cosine": 0.98, "max_rel_error": 0.2, "min_snr_db": 15.0},
                        "min_cosine": 0.995, "max_rel_error": 0.05,
                        "outputs": {"y": {"cosine": 0.995, "cosine_mean": 0.998, "max_abs": 0.12, "rel_error": 0.05,
                                          "snr_db": 24.1, "top1_agreement": 0.95, "top5_agreement": 1.0}}},
             "quantization": {"method": "minmax", "io": "float", "float_layers": ["conv3"],
                              "mixed_precision": {"tried": [{"float_layers": 0, "passed": False, "min_cosine": 0.93},
                                                            {"float_layers": 1, "passed": True, "min_cosine": 0.995}],
                                                  "size_cost": 1.08, "latency_cost": 1.15},
                              "layers": layers},
             "latency_ms": {"mean": 3.2, "p50": 3.1, "p90": 3.6, "runs": 50, "threads": 1, "ratio_to_fp32": 0.45}},
            {"name": "gpu", "format": "tflite", "precision": "fp16", "info": {"size": 2 * 1024 * 1024},
             "parity": {"passed": False, "thresholds": {"min_cosine": 0.98},
                        "outputs": {"y": {"cosine": 0.5, "snr_db": float("nan")}}}},
        ],
        "build": {"warnings": ["opset 13 Resize emulated with RESIZE_BILINEAR"],
                  "stages": [{"name": "reference", "seconds": 6.0, "cpu_seconds": 11.5, "peak_rss_mb": 470.2},
                             {"name": "convert:cpu", "seconds": 2.0, "cpu_seconds": 1.9, "peak_rss_mb": 512.0},
                             {"name": "bundle<b>", "seconds": 0.25, "cpu_seconds": None, "peak_rss_mb": None}],
                  "seconds": 8.0, "cpu_seconds": 13.6, "peak_rss_mb": 530.4},
    }


MINIMAL = {"model": {"name": "m"}, "targets": []}
EXTRAS = {"host": "Linux x86_64, 2 cores", "command": "edgepack build model.onnx --target cpu"}


class TagBalance(HTMLParser):
    """Records every mismatch between opening and closing tags (void elements excluded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> TagBalance:
    p = TagBalance()
    p.feed(page)
    p.close()
    return p


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg\b.*?</svg>", page, flags=re.S)]


def worst_rows(page: str) -> list[str]:
    table = re.search(r'<table class="worst">.*?</table>', page, flags=re.S).group(0)
    return re.findall(r"<tbody>(.*?)</tbody>", table, flags=re.S)[0].split("</tr>")[:-1]


@pytest.mark.parametrize("manifest", [full_manifest(), MINIMAL, {}], ids=["full", "minimal", "empty"])
def test_page_is_balanced_and_self_contained(manifest):
    page = render_report(manifest, EXTRAS)
    p = parse(page)
    assert p.errors == [] and p.stack == []
    assert page.startswith("<!DOCTYPE html>")
    for tag in ("html", "head", "body", "main", "table", "section", "svg"):
        assert len(re.findall(rf"<{tag}[\s>]", page)) == page.count(f"</{tag}>"), tag
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", page)  # only in-page anchors


def test_full_report_content():
    page = render_report(full_manifest(), EXTRAS)
    text = " ".join(parse(page).text)
    assert "resnet" in text and "2026-11-29T21:00:00+00:00" in text
    assert "1.18 MB" in text and "0.27× fp32" in text and "4.36 MB" in text  # size, ratio, fp32 size
    assert "1,234,567 bytes" in page
    assert "0.995000" in text and "24.1 dB" in text and "95.0%" in text and "3.20 ms" in text and "0.45×" in text
    assert "1.08× (+8.0%)" in text and "1.15× (+15.0%)" in text
    assert "Linux x86_64, 2 cores" in text and "edgepack build model.onnx" in text
    assert "onnxruntime" in text and "RESIZE_BILINEAR" in text
    assert 'class="badge pass"' in page and 'class="badge fail"' in page
    assert "Synthetic calibration" not in text
    assert 'class="num bad">0.500000' in page and ">NaN<" in page  # gpu parity failures highlighted


def test_build_cost_table_lists_every_stage():
    page = render_report(full_manifest())
    section = re.search(r"<h2>Build cost</h2>.*?</section>", page, flags=re.S).group(0)
    text = " ".join(parse(section).text)
    assert "reference" in text and "6.00 s" in text and "75.0%" in text and "470 MB" in text
    assert "convert:cpu" in text and "512 MB" in text
    assert "whole build" in text and "8.00 s" in text and "13.60 s" in text and "530 MB" in text
    assert "bundle&lt;b&gt;" in section and "<b>whole build</b>" in section   # names escaped
    assert "Build cost" not in render_report(MINIMAL)                           # no stages, no section


def test_worst_layers_table_leads_with_culprit_and_marks_float():
    page = render_report(full_manifest())
    rows = worst_rows(page)
    assert len(rows) == 10
    assert 'class="culprit"' in rows[0] and "conv3_out" in rows[0] and "culprit</span>" in rows[0]
    assert "9.7 dB" in rows[0]
    float_rows = [r for r in rows if "conv4_out" in r]
    assert float_rows and "float (kept)" in float_rows[0]
    assert "float (kept)" in rows[0]  # conv3 is listed in quantization.float_layers (by origin)


def test_synthetic_calibration_is_loud():
    m = full_manifest()
    m["calibration"]["synthetic"] = True
    page = render_report(m)
    assert 'class="warn-synthetic"' in page and "Synthetic calibration data" in page


def test_minimal_manifest_uses_dashes():
    page = render_report(MINIMAL)
    text = " ".join(parse(page).text)
    assert "m" in parse(page).text and "—" in text and "No targets were built." in text
    assert svgs(page) == []


def test_malicious_strings_are_escaped():
    m = full_manifest()
    m["model"]["name"] = EVIL
    m["targets"][0]["name"] = EVIL
    m["targets"][0]["info"]["op_histogram"][EVIL] = 3
    m["targets"][0]["quantization"]["layers"][5]["tensor"] = EVIL
    m["build"]["warnings"].append(EVIL)
    page = render_report(m, {"host": EVIL, EVIL: "x\x00y"})
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert parse(page).errors == []
    for svg in svgs(page):
        assert svg.tag == "svg"
    assert EVIL in worst_rows(page)[0].replace("&lt;", "<").replace("&gt;", ">")


def test_every_svg_is_xml():
    found = svgs(render_report(full_manifest()))
    assert len(found) == 2  # op histogram + per-layer chart of the cpu target
    for svg in found:
        assert svg.tag == "svg" and svg.get("viewBox")
    bars = [e for e in found[0].iter("rect")]
    assert len(bars) == 3  # CONV_2D, ADD, MEAN


def test_thousands_of_layers_are_downsampled_but_ranking_is_exact():
    m = full_manifest()
    n = 5000
    layers = [{"tensor": f"t{i}", "op": "ADD", "snr_db": 60.0 - (i % 50), "added_db": (i % 97) / 100}
              for i in range(n)]
    layers[3210].update(tensor="the_culprit", added_db=25.0, snr_db=12.0)
    layers[4000]["snr_db"] = math.inf
    layers[4001]["snr_db"] = None
    m["targets"][0]["quantization"]["layers"] = layers
    page = render_report(m)
    layer_svg = svgs(page)[1]
    bars = list(layer_svg.iter("rect"))
    assert 100 <= len(bars) <= 260
    assert any(e.tag == "polyline" for e in layer_svg.iter())
    assert "the_culprit" in worst_rows(page)[0]
    assert len(page) < 400_000
    assert rank_layers(layers)[0] == 3210


def test_rank_layers_falls_back_to_snr_and_skips_empty():
    layers = [{"snr_db": 30.0}, {"snr_db": 10.0}, {}, {"snr_db": 20.0}, {"snr_db": "n/a"}]
    assert rank_layers(layers, 3) == [1, 3, 0]


def test_junk_types_do_not_crash():
    odd_target = {"info": [], "parity": "yes", "latency_ms": {"mean": "fast"},
                  "quantization": {"layers": [None, {"snr_db": True}], "mixed_precision": 5}}
    junk = {"model": "resnet", "tools": ["a"], "inputs": "x", "targets": [None, 3, odd_target],
            "calibration": {"synthetic": "maybe"}, "build": None}
    page = render_report(junk, extras=None)
    assert parse(page).errors == []
    assert "fast" in page


def test_write_report(tmp_path):
    out = write_report(tmp_path / "sub" / "report.html", full_manifest(), EXTRAS)
    assert out.is_file() and out.read_text(encoding="utf-8") == render_report(full_manifest(), EXTRAS)


def test_task_figures_show_per_output_with_breaches_marked():
    m = full_manifest()
    parity = m["targets"][0]["parity"]
    parity["thresholds"].update(min_iou=0.9, max_prob_error=0.1)
    parity["outputs"] = {
        "maps": {"cosine": 0.93, "cosine_mean": 0.95, "max_abs": 0.4, "rel_error": 0.4, "snr_db": 12.0,
                 "kind": "probability_map", "iou_50": 0.85, "iou_30": 0.92, "region_recall": 1.0,
                 "region_precision": 0.75, "max_prob_error": 0.4},
        "chars": {"cosine": 0.99, "cosine_mean": 0.995, "max_abs": 0.05, "rel_error": 0.05, "snr_db": 30.0,
                  "kind": "probabilities", "top1_agreement": 0.99, "sequence_agreement": 0.8, "max_prob_error": 0.05},
        "emb": {"cosine": 0.999, "max_abs": 0.01, "rel_error": 0.01, "snr_db": 40.0, "kind": "values"}}
    page = render_report(m, EXTRAS)
    text = " ".join(parse(page).text)
    assert "Task figures" in text and "map IoU ≥ 0.9" in text and "max probability error ≤ 0.1" in text
    assert "probability map: " in text and "IoU@0.3 92.0%" in text and "same sequence 80.0%" in text
    assert "regions found 100.0%, regions right 75.0%" in text
    assert '<span class="bad">IoU@0.5 85.0%</span>' in page and '<span class="bad">max prob. error 0.4</span>' in page
    assert "max prob. error 0.05" in text and '<span class="bad">max prob. error 0.05' not in page
