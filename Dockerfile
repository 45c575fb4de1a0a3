# syntax=docker/dockerfile:1
# The eemo-pipeline image for Kubernetes (docs/deploy.md, "The image"): the package installed from its wheel with
# the train, k8s and postgres extras (dagster-k8s, dagster-postgres); deploy/ in the working directory. One image serves
# the code server (the Helm chart's user deployment), the run and step pods and the training pods.
#   docker build -t registry.example/eemo-pipeline:0.1.0 .
# Not built on the development machine (no container runtime there); eemo_pipeline_tests/test_image.py checks this
# file and runs its wheel stage.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Stage 1: the wheel. eemo_pipeline/data_contracts and eemo_pipeline/dagster.yaml are links into the files copied
# beside the package, so the wheel carries the contracts and the instance defaults.
FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md dagster.yaml ./
COPY data_contracts/ data_contracts/
COPY eemo_pipeline/ eemo_pipeline/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Stage 2: the runtime. torch comes as PyPI's default Linux wheel (CUDA included) for the GPU pods.
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    EEMO_STORAGE=/data/eemo
COPY --from=wheel /wheels /wheels
# The k8s and postgres extras bring dagster-k8s and dagster-postgres with the dagster release they pin.
RUN pip install "$(ls /wheels/eemo_pipeline-*.whl)[train,k8s,postgres]" \
 && rm -r /wheels
WORKDIR /opt/eemo
COPY workspace.yaml ./
COPY deploy/ deploy/
RUN useradd --create-home --uid 1000 eemo \
 && mkdir -p /opt/dagster/dagster_home /data/eemo \
 && chown -R eemo /opt/dagster /data/eemo
USER 1000
EXPOSE 3030
# The code server; the Helm chart's user deployment passes the same module as dagsterApiGrpcArgs.
CMD ["dagster", "api", "grpc", "--host", "0.0.0.0", "--port", "3030", "--module-name", "eemo_pipeline.k8s_definitions"]
