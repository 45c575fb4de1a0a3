"""The generation stages as plain functions over polars frames: which images and pairs to send, the work
items (rendered prompts, cache payloads, the context ``validators.py`` checks answers against), and the
answers table.

No Dagster and no network here: a client sends the ``WorkItem`` lists and returns ``ChatAnswer`` objects,
which ``answers.answers_frame`` turns into the ``generated_text`` table (``data_contracts/generated_text.yaml``).

Stages (paper 3.2, appendix C.3 and C.6), one module each:

1. ``describe`` (describer, vision model): a short description of each selected image
   (``DESCRIPTION_SELECTIONS``; by default the paper's rule: images with human comments, i.e. Affection's,
   whose ranking has distinct intensities) whose file decodes;
2. ``reason`` (reasoner, text model): one paragraph linking the description to the ranked emotions, with the
   image's human comments summarised (``none`` only under a selection that admits images without comments);
3. ``descriptive`` answers (reasoner): ``narrative``, ``causal``, ``evocation`` and ``reasoning_choice``
   (multiple choice written strictly from the validated reasoning, paper 3.3) per image, ``pair_ranking`` and
   ``pair_dimension`` per pair of images of one source.

``kinds`` holds the template kinds and what the stages share (earlier answers, rankings, VAD levels as prompt
facts); ``answers`` the output table. Every default the paper does not publish is a named constant.
"""
