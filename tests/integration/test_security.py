"""Security of model loading and network use (issue 7, item 6).

- No ``trust_remote_code=True``, pickle loading or ``eval`` in the plugin's
  source, and the transformers loaders pass ``trust_remote_code=False``
  unless the user asks.
- Checkpoints are safetensors or are unpickled with ``weights_only=True``:
  a pickle whose ``__reduce__`` runs code is refused by every loader, and
  nothing in it runs (the payload creates a directory; a control shows it
  does when unpickled for real).
- Local paths are validated, with errors naming the parameter.
- With the network blocked and the offline switches unset, the three
  operators run on local checkpoints without touching the network.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import imagekit
from securitykit import Payload
from stoplight.plugins.autolabel.backends import get_backend
from stoplight.plugins.scoring import embeddings as E

REPO = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parents[1] / "support"  # kits, netblock, subprocess scripts


# ------------------------------------------------------------- source scan


def _source_files():
    files = [REPO / "__init__.py", *sorted((REPO / "plugins").rglob("*.py")),
             *sorted((REPO / "examples").rglob("*.py"))]
    assert len(files) > 20
    return files


def _const(node):
    return node.value if isinstance(node, ast.Constant) else "<not a constant>"


def _dangers(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            if "trust_remote_code" in kw and _const(kw["trust_remote_code"]) is not False:
                # only a variable that comes from the user's option is allowed
                if not isinstance(kw["trust_remote_code"], ast.Name):
                    found.append((node.lineno, "trust_remote_code not False"))
            if _const(kw.get("weights_only", ast.Constant(None))) is False:
                found.append((node.lineno, "weights_only=False"))
            if _const(kw.get("allow_pickle", ast.Constant(None))) is True:
                found.append((node.lineno, "allow_pickle=True"))
            if _const(kw.get("use_safetensors", ast.Constant(None))) is False:
                found.append((node.lineno, "use_safetensors=False"))
            if owner == "torch" and name == "load" and _const(kw.get("weights_only", ast.Constant(None))) is not True:
                found.append((node.lineno, "torch.load without weights_only=True"))
            if owner in ("pickle", "dill", "joblib", "cloudpickle") and name in ("load", "loads"):
                found.append((node.lineno, f"{owner}.{name}"))
            if isinstance(func, ast.Name) and func.id in ("eval", "exec"):
                found.append((node.lineno, func.id))
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                if (isinstance(k, ast.Constant) and k.value == "trust_remote_code"
                        and _const(v) is not False and not isinstance(v, ast.Name)):
                    found.append((node.lineno, "trust_remote_code default not False"))
    return found


def test_source_has_no_remote_code_pickle_or_eval():
    problems = []
    for path in _source_files():
        for line, what in _dangers(ast.parse(path.read_text(), str(path))):
            problems.append(f"{path.relative_to(REPO)}:{line}: {what}")
    assert problems == []


def test_the_scan_finds_what_it_looks_for():
    bad = """
import torch, pickle
m = AutoModel.from_pretrained(x, trust_remote_code=True)
torch.load(p)
torch.load(p, weights_only=False)
pickle.loads(b)
np.load(p, allow_pickle=True)
eval(s)
OPTS = {"trust_remote_code": True}
"""
    found = [what for _, what in _dangers(ast.parse(bad))]
    assert found.count("trust_remote_code not False") == 1
    assert "torch.load without weights_only=True" in found and "weights_only=False" in found
    assert {"pickle.loads", "allow_pickle=True", "eval", "trust_remote_code default not False"} <= set(found)
    good = ("torch.load(p, weights_only=True)\nf(trust_remote_code=trust_remote_code)\n"
            "f(trust_remote_code=False)\nkw = {'trust_remote_code': trust_remote_code}")
    assert _dangers(ast.parse(good)) == []


HF_BACKENDS = ["owlv2", "owlvit", "grounding-dino", "mm-grounding-dino", "omdet-turbo", "sam3"]
AUTO = {"AutoConfig", "AutoProcessor", "AutoModelForZeroShotObjectDetection"}


@pytest.mark.parametrize("backend", HF_BACKENDS)
def test_transformers_loaders_get_trust_remote_code_false_by_default(backend, tiny_checkpoint, monkeypatch):
    import transformers

    calls = []

    def spy(cls_name):
        original = getattr(transformers, cls_name).from_pretrained.__func__
        cls = getattr(transformers, cls_name)

        def from_pretrained(klass, *args, **kwargs):
            # Stoplight's own calls (transformers calls these internally too)
            if sys._getframe(1).f_globals.get("__name__", "").startswith("stoplight."):
                calls.append((cls_name, dict(kwargs)))
            return original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(from_pretrained))

    cls = get_backend(backend)
    # a backend may name its transformers classes (SAM 3: Sam3Processor,
    # Sam3Model); a named class is Stoplight's choice, never the checkpoint's
    # code, and is never handed trust_remote_code
    model_cls = cls.model_class or "AutoModelForZeroShotObjectDetection"
    expected = {"AutoConfig", cls.processor_class or "AutoProcessor", model_cls}
    for name in AUTO | expected:
        spy(name)
    cls(checkpoint=tiny_checkpoint(backend), device="cpu")
    assert {c for c, _ in calls} == expected
    for c, kw in calls:
        if c in AUTO:
            assert kw.get("trust_remote_code") is False, calls
        else:
            assert "trust_remote_code" not in kw, calls
    model_kwargs = [kw for c, kw in calls if c == model_cls]
    assert model_kwargs and all(kw.get("use_safetensors") is True for kw in model_kwargs)  # local safetensors dir

    # only an explicit, boolean opt-in switches it on (for the Auto classes)
    calls.clear()
    cls(checkpoint=tiny_checkpoint(backend), device="cpu", trust_remote_code=True)
    assert calls and all(kw.get("trust_remote_code") is True for c, kw in calls if c in AUTO)
    assert all("trust_remote_code" not in kw for c, kw in calls if c not in AUTO)
    for value in ("true", 1, "False", None):
        with pytest.raises(ValueError, match="'trust_remote_code' must be True or False"):
            cls(checkpoint=tiny_checkpoint(backend), device="cpu", trust_remote_code=value)


# ----------------------------------------------------------- evil pickles


@pytest.fixture()
def evil(tmp_path):
    """``evil(path)`` writes a torch file whose unpickling runs the payload."""
    import torch

    marker = tmp_path / "code-ran"

    def write(path: Path, wrap=lambda p: {"model": p, "state_dict": p}) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(wrap(Payload(marker)), path)
        return path

    write.marker = marker
    return write


def test_control_the_payload_runs_when_unpickled(evil, tmp_path):
    """Without this, every refusal test below could pass vacuously."""
    import torch

    path = evil(tmp_path / "control.pt")
    assert not evil.marker.exists()
    torch.load(path, weights_only=False)
    assert evil.marker.exists()


@pytest.mark.parametrize("backend", ["yoloe", "yolo-world"])
@pytest.mark.parametrize("layout", ["directory", "file"])
def test_ultralytics_pickle_checkpoint_is_refused(backend, layout, evil, tmp_path):
    pt = evil(tmp_path / "ckpt" / "model.pt")
    checkpoint = pt.parent if layout == "directory" else pt
    with pytest.raises(ValueError, match="'checkpoint'.*refused by weights_only loading") as info:
        get_backend(backend)(checkpoint=str(checkpoint), device="cpu")
    assert "allow_pickle" in str(info.value)  # the explicit way out is named
    assert not evil.marker.exists(), "the checkpoint's code ran"


def test_ultralytics_real_checkpoint_loads_under_weights_only(tiny_checkpoint):
    """The restriction does not break real (tiny, random) checkpoints."""
    for backend in ("yoloe", "yolo-world"):
        det = get_backend(backend)(checkpoint=tiny_checkpoint(backend), device="cpu")
        det.set_prompts(["person", "bus"])
        (pred,) = det([np.zeros((64, 96, 3), np.uint8)])
        assert pred.prompt_scores.shape[1] == 2
    with pytest.raises(ValueError, match="'allow_pickle' must be True or False"):
        get_backend("yoloe")(checkpoint=tiny_checkpoint("yoloe"), device="cpu", allow_pickle="yes")


def test_ultralytics_safe_mode_is_scoped_to_stoplight_loads(tiny_checkpoint):
    import ultralytics.nn.tasks as tasks

    before = tasks.SAFE_LOAD
    get_backend("yoloe")(checkpoint=tiny_checkpoint("yoloe"), device="cpu")
    assert tasks.SAFE_LOAD == before  # the user's own ultralytics loads are left alone


def test_text_encoder_pickle_weights_are_refused(evil, tiny_checkpoint, tmp_path):
    """A YOLO checkpoint's ``text_encoder/`` with pickled weights."""
    src = Path(tiny_checkpoint("yoloe"))
    ckpt = tmp_path / "yoloe"
    shutil.copytree(src, ckpt)
    te = ckpt / "text_encoder"
    for f in te.glob("*.safetensors"):
        f.unlink()
    evil(te / "open_clip_pytorch_model.bin", wrap=lambda p: {"state_dict": p})
    with pytest.raises(ValueError, match="Text encoder .*text_encoder.*pickle.*nothing was run"):
        get_backend("yoloe")(checkpoint=str(ckpt), device="cpu").set_prompts(["person"])
    assert not evil.marker.exists(), "the text encoder's code ran"


def test_transformers_pickle_weights_are_refused(evil, tiny_checkpoint, tmp_path):
    ckpt = tmp_path / "owlv2"
    shutil.copytree(tiny_checkpoint("owlv2"), ckpt)
    (ckpt / "model.safetensors").unlink()
    evil(ckpt / "pytorch_model.bin", wrap=lambda p: {"weight": p})
    with pytest.raises(ValueError, match="'checkpoint'.*pickle.*refused.*nothing was run"):
        get_backend("owlv2")(checkpoint=str(ckpt), device="cpu")
    assert not evil.marker.exists(), "the checkpoint's code ran"


def test_clip_pickle_checkpoint_is_refused(evil, tmp_path, tmp_root):
    name, _ = E.build_random_clip(str(tmp_root / "checkpoints" / "clip-security"))
    pt = evil(tmp_path / "clip.pt", wrap=lambda p: {"state_dict": p})
    with pytest.raises(Exception):
        E.load_clip(name, str(pt), device="cpu")
    assert not evil.marker.exists(), "the CLIP checkpoint's code ran"


def test_clip_pickle_checkpoint_refusal_names_the_parameter(evil, tmp_path, tmp_root):
    name, _ = E.build_random_clip(str(tmp_root / "checkpoints" / "clip-security"))
    pt = evil(tmp_path / "clip.pt", wrap=lambda p: {"state_dict": p})
    with pytest.raises(ValueError, match="'pretrained'"):
        E.load_clip(name, str(pt), device="cpu")
    assert not evil.marker.exists()


def test_text_embeddings_pickle_is_refused(tmp_path, tiny_checkpoint):
    marker = tmp_path / "code-ran"
    path = tmp_path / "vec.npy"
    np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled"):
        get_backend("yoloe")(
            checkpoint=tiny_checkpoint("yoloe"), device="cpu", text_embeddings={"person": str(path)}
        )
    assert not marker.exists()


# ------------------------------------------------------------- local paths


@pytest.mark.parametrize(
    "backend, make, match",
    [
        ("owlv2", lambda d: d / "missing", "'checkpoint'.*does not exist"),
        ("owlv2", lambda d: _file(d / "weights.safetensors"), "'checkpoint'.*is a file"),
        ("grounding-dino", lambda d: _dir(d / "empty"), "'checkpoint'.*config.json"),
        ("yoloe", lambda d: d / "missing" / "model.pt", "'checkpoint'.*no such file"),
        ("yoloe", lambda d: _file(d / "model.onnx"), "'checkpoint'.*not an ultralytics"),
        ("yolo-world", lambda d: _dir(d / "two", ["a.pt", "b.pt"]), "'checkpoint'.*exactly one"),
    ],
)
def test_local_checkpoint_paths_are_validated(backend, make, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        get_backend(backend)(checkpoint=str(make(tmp_path)), device="cpu")


def _file(path: Path) -> Path:
    path.write_bytes(b"\0" * 64)
    return path


def _dir(path: Path, files=()) -> Path:
    path.mkdir()
    for f in files:
        _file(path / f)
    return path


def test_local_clip_and_text_encoder_paths_are_validated(tmp_path, tiny_checkpoint):
    with pytest.raises(ValueError, match="'pretrained'"):
        E.load_clip("ViT-B-32", str(tmp_path / "missing.safetensors"), device="cpu")
    with pytest.raises(ValueError, match="'text_encoder_checkpoint': no such file"):
        get_backend("yoloe")(checkpoint=tiny_checkpoint("yoloe"), device="cpu",
                             text_encoder="ViT-B-32", text_encoder_checkpoint=str(tmp_path / "nope.bin"))
    with pytest.raises(ValueError, match="'text_embeddings': no such file"):
        get_backend("yoloe")(checkpoint=tiny_checkpoint("yoloe"), device="cpu",
                             text_embeddings=str(tmp_path / "nope.npz"))


# ----------------------------------------------------------------- network


@pytest.mark.slow
def test_operators_run_with_the_network_blocked(tiny_checkpoint, tmp_path, tmp_root):
    clip_name, clip_ckpt = E.build_random_clip(str(tmp_root / "checkpoints" / "clip-offline"))
    images = [str(p) for p in imagekit.photo_paths()[:2]]
    job = dict(
        images=images,
        checkpoints={b: tiny_checkpoint(b) for b in ("owlv2", "yoloe", "grounding-dino")},
        clip_model=clip_name,
        clip_checkpoint=clip_ckpt,
    )
    log = tmp_path / "network.log"
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "YOLO_OFFLINE", "PYTHONPATH")}
    env.update(STOPLIGHT_NETLOG=str(log), PYTHONPATH=os.pathsep.join([str(SUPPORT / "netblock"), str(SUPPORT)]))
    proc = subprocess.run(
        [sys.executable, str(SUPPORT / "offline_operators.py"), json.dumps(job)],
        env=env, capture_output=True, text=True, timeout=540, cwd=tmp_path,
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    results = json.loads(lines[-1][len("RESULT "):])
    # the block was in force, and it is the only access on record
    assert "blocked by the test" in results.pop("control")
    attempts = log.read_text().split("=== ")[1:] if log.exists() else []
    assert [a.splitlines()[0] for a in attempts] == ["connect ('203.0.113.7', 80)"], log.read_text()
    for op, (error, count) in results.items():
        assert error is None and count > 0, (op, error)
    assert set(results) == {"zero_shot_detect[owlv2]", "zero_shot_detect[yoloe]",
                            "zero_shot_detect[grounding-dino]", "compute_label_embeddings",
                            "score_labels"}
