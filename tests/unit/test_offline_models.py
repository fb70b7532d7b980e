"""Nothing downloads at run time: every runtime loads and predicts with the network refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from deployments.runtimes import RUNTIMES
from tests.support.models import CLASSIFIER, DETECTOR
from tests.support.paths import PROJECT_ROOT


def test_models_load_and_predict_without_any_network_call(tmp_path: Path) -> None:
    """In a fresh interpreter with every socket connection refused and recorded."""
    script = textwrap.dedent(f"""
        import socket
        attempts = []
        def refuse(self, address, *args):
            attempts.append(address)
            raise OSError("network disabled by the test")
        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = lambda address, *a, **k: refuse(None, address)

        from pathlib import Path
        from deployments.detector_runtime import DetectorConfig, PrimitiveDetector
        from deployments.classifier_runtime import ClassifierConfig, SceneClassifier
        from scripts.datagen.dataset import Item, sample
        image = sample(Item("test", 0, 7)).encoded
        for runtime in {RUNTIMES!r}:
            detector = PrimitiveDetector(DetectorConfig(Path({str(DETECTOR)!r}), runtime=runtime))
            found = detector.predict([image])
        scenes = SceneClassifier(ClassifierConfig(Path({str(CLASSIFIER)!r}))).predict([image], found)
        assert found[0] and scenes[0].class_name
        assert not attempts, attempts
        print("offline ok", len(found[0]), scenes[0].class_name)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "offline ok" in result.stdout


