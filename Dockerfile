# The Primscene image for KubeRay (k8s/, docs/deploy.md): Ray, the project and its weights.
#
#   docker build -t registry.example.com/vision/primscene:0.1.0 .
#
# The base is Ray's own image for the Ray the project pins (pyproject: ray[serve]==2.60.0) and
# the Python it requires (3.11); `-cpu` is its Ubuntu build without the CUDA toolkit, which is
# also what the plain `2.60.0-py311` tag points to. Its Ray version must equal the RayService's
# `rayVersion` (tests/infra/test_k8s_manifests.py checks all three agree; the build checks the Ray it
# finds). The image runs as Ray's user `ray` (uid 1000) with Ray's Python in /home/ray/anaconda3.
#
# Nothing is downloaded when a container starts: the weights are in the image, and Ultralytics,
# timm/Hugging Face and Ray's usage stats are told to stay offline.
#
# Not built in the project's CI (no container engine there): tests/infra/test_k8s_manifests.py checks
# this file statically.
FROM rayproject/ray:2.60.0-py311-cpu

# OpenCV (pulled in by Ultralytics) needs libGL and GLib, which Ray's image lacks. The project
# folder is made here, owned by `ray`: WORKDIR alone may create it owned by root, and the
# editable install writes its metadata there.
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /home/ray/primscene \
    && chown 1000:100 /home/ray/primscene
USER ray

ENV YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=false \
    YOLO_VERBOSE=false \
    YOLO_CONFIG_DIR=/home/ray/primscene/.ultralytics \
    HF_HUB_OFFLINE=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    RAY_worker_niceness=0 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /home/ray/primscene

# PyTorch first, in its own layer: the largest download, and it changes only with the pins in
# pyproject.toml (which these must equal; the test checks). The PyPI wheels carry their CUDA
# runtime, so the same image serves the GPU worker group. For a smaller CPU-only image, build
# with `--build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu` (not tried here).
ARG TORCH_INDEX_URL
RUN pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "torch==2.14.1" "torchvision==0.29.1"

# The project, its shipped weights (weights/: detector .pt/.onnx/OpenVINO, classifier) and the
# Serve configs. .dockerignore keeps out the virtualenv, data, runs, var/, secrets.
COPY --chown=1000:100 . .

# An editable install: serve_app/app.py finds weights/ next to the package (PROJECT_ROOT), and
# db/migrate.py its migrations, so the code runs from this folder rather than a copy in
# site-packages. `ray[serve]==2.60.0` is already satisfied by the base image.
RUN pip install -e ./primscene_client -e . \
    && mkdir -p "$YOLO_CONFIG_DIR" \
    && python -c "import ray; assert ray.__version__ == '2.60.0', ray.__version__" \
    && python -c "import cv2, serve_app.app" \
    && python scripts/check_serve_config.py configs/cluster.yaml
