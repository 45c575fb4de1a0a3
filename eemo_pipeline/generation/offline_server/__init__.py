"""A local OpenAI-compatible chat server with fault injection and a rule-based offline model.

Tests, the embedded sample and benchmarks point the generation client at it instead of a real endpoint:
``server`` (HTTP: Starlette on uvicorn, the request log, ``running_in_thread``, ``running_in_subprocess``, the
command line), ``rules_model`` (``eemo-offline-rules-v1``, rules rather than a neural network, as every
response's ``model`` field says), ``image_stats`` (what ``describe`` writes), ``faults`` (``FaultPlan``) and
``chat_api`` (the OpenAI chat API as they speak it: model name, limits, error shape, body hash).

Run it alone with ``python -m eemo_pipeline.generation.offline_server --port 8765 --latency 0.1``.
"""
