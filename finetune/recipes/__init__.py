"""One recipe per training method, torchtune-style: each reads top to bottom through the same stages.

    load checkpoint -> setup -> train -> save -> cleanup

The stages themselves are shared functions (`finetune.stages`, `finetune.loop`); a recipe adds
only what is its own: how its model is built and which weights it saves.
"""
