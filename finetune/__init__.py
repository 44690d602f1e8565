"""Fine-tuning: datasets from documents / Q&A files / the conversation log, LoRA and full recipes,
evaluation before and after, and the workspace's model registry.

    from finetune.train import TrainConfig, train
    result = train(TrainConfig(qa=[Path("qa.jsonl")], workspace=Path("workspace"), name="support-v1"))
    Registry("workspace").use("support-v1")

Heavy imports (torch, transformers, peft) happen inside the submodules, so importing the
package for the CLI's --help stays fast.
"""
