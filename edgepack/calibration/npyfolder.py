"""Folders of ``.npy`` files, in three layouts.

(a) per input:   ``<input name>.npy`` for every input, each [samples, *input shape] (any number of inputs).
(b) per sample:  any file names, one sample per file, for single-input models only; each file holds
                 exactly the input shape, or [1, *input shape] when the input's first dim is not 1.
(c) subfolders:  one subfolder per input, named after it, each holding one .npy per sample as in (b);
                 samples pair up by file name, so every subfolder must hold the same file names.
A folder whose file names are all input names is (a); otherwise it is (b), which needs a single input.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .checks import CalibrationError, InputSpec, check_names, describe_inputs, validate
from .folder import LAYOUTS_HINT, Contents, require_one_kind, scan

Samples = tuple[list[dict[str, np.ndarray]], list[str]]


def read_npy_folder(found: Contents, kind: str, specs: dict[str, InputSpec]) -> tuple[Samples, str]:
    """(samples, warnings) and the layout used ("per-input", "per-sample" or "subfolders")."""
    where = f"calibration folder {found.folder}"
    if kind == "subfolders":
        return _subfolders(found, specs, where), "subfolders"
    stems = [p.stem for p in found.npy]
    if set(stems) <= set(specs):
        return validate({p.stem: _load(p) for p in found.npy}, specs, where), "per-input"
    if len(specs) == 1:
        (spec,) = specs.values()
        return _stack_samples({spec.name: found.npy}, specs, where), "per-sample"
    odd = [p.name for p in found.npy if p.stem not in specs][:5]
    raise CalibrationError(f"{where}: .npy files {odd} are not named after model inputs, and per-sample "
                           f"files need a single-input model (this one has {len(specs)})",
                           hint=f"the model's inputs are {describe_inputs(specs)}; name the files "
                                f"'<input>.npy' holding [samples, *input shape], or use one subfolder per input")


def _subfolders(found: Contents, specs: dict[str, InputSpec], where: str) -> Samples:
    check_names([p.name for p in found.subfolders], specs, where)
    files = {}
    for sub in found.subfolders:
        contents = scan(sub)
        if require_one_kind(contents) != ".npy files":
            raise CalibrationError(f"calibration subfolder {sub} holds {contents.kinds()[0]}, not .npy files",
                                   hint=LAYOUTS_HINT)
        files[sub.name] = contents.npy
    counts = {k: len(v) for k, v in files.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"'{k}': {v}" for k, v in counts.items())
        raise CalibrationError(f"{where}: inputs disagree on the number of samples ({listed})",
                               hint="every input subfolder needs one file per sample, with the same file names")
    names = {k: [p.name for p in v] for k, v in files.items()}
    first, *rest = names
    for other in rest:
        if names[other] != names[first]:
            diff = sorted(set(names[first]) ^ set(names[other]))[:5]
            raise CalibrationError(f"{where}: subfolders '{first}' and '{other}' hold different file names "
                                   f"(e.g. {diff})", hint="samples pair up by file name across input subfolders")
    return _stack_samples(files, specs, where)


def _stack_samples(files: dict[str, list[Path]], specs: dict[str, InputSpec], where: str) -> Samples:
    data = {}
    for name, paths in files.items():
        arrays = [_one_sample(p, specs[name]) for p in paths]
        for path, arr in zip(paths, arrays):
            if arr.dtype != arrays[0].dtype:
                raise CalibrationError(f"{where}: {path.name} is {arr.dtype} but {paths[0].name} is "
                                       f"{arrays[0].dtype}", hint=f"save every sample of '{name}' as "
                                                                  f"{specs[name].dtype}")
        data[name] = np.stack(arrays)
    labels = [p.name for p in next(iter(files.values()))]
    return validate(data, specs, where, labels=labels)


def _one_sample(path: Path, spec: InputSpec) -> np.ndarray:
    arr = _load(path)
    if arr.shape == spec.shape:
        return arr
    batched = spec.shape[:1] != (1,)
    if batched and arr.shape == (1, *spec.shape):
        return arr[0]
    allowed = f"{list(spec.shape)}" + (f" or {[1, *spec.shape]}" if batched else "")
    raise CalibrationError(f"calibration file {path} has shape {list(arr.shape)}, input '{spec.name}' "
                           f"expects one sample of shape {allowed}",
                           hint="per-sample files hold one sample each; to store [samples, *input shape] in "
                                f"one file, name it '{spec.name}.npy'")


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise CalibrationError(f"calibration file {path} is not a readable .npy ({exc})",
                               hint="write it with np.save(path, array) (numeric arrays only)") from exc
