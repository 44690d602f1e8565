"""The pieces every package stands on: workspace files, model resolution, device choice, text.

Nothing here imports `index`, `finetune`, `assistant` or `ui`; they all import from here.
"""
