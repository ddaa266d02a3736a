"""The shipped weights travel inside a built wheel, and a non-editable install
loads them with no path, from outside the source tree."""
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_ships_default_weights(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(REPO)], check=True)
    (wheel,) = (tmp_path / "dist").glob("kwmlp-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("kwmlp/weights/kwmlp.pt")
        names = archive.namelist()
    assert shipped == (REPO / "weights" / "kwmlp.pt").read_bytes()
    for apt_script in ("install_tts.sh", "install_negatives.sh"):  # not library code
        assert f"kwmlp/train/{apt_script}" not in names
    assert "kwmlp/train/synth/corpus.py" in names
    # the weights and their model card; training logs and resume points stay in the source
    assert {n for n in names if n.startswith("kwmlp/weights/")} == {
        "kwmlp/weights/kwmlp.pt", "kwmlp/weights/README.md"}

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(site), str(wheel)], check=True)
    script = ("import kwmlp, torch; m = kwmlp.load_model(device='cpu'); "
              "print(kwmlp.__file__); print(m.weights_path); "
              "print(tuple(kwmlp.get_scene_embeddings(torch.zeros(1, 8000), m).shape))")
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    module_file, weights_path, shape = run.stdout.split("\n")[:3]
    assert module_file.startswith(str(site)) and weights_path.startswith(str(site))
    assert shape == "(1, 1024)"


def test_the_source_passes_the_linter():
    """ruff (the dev extra) with the project's settings (pyproject's tool.ruff)."""
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(root)],
                         capture_output=True, text=True, cwd=root)
    assert run.returncode == 0, run.stdout + run.stderr
