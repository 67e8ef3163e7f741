"""Everything that makes the embedded default run offline: the GGUF model converted once (``model``), the
prompt pool and the model's own answers it is trained on (``corpus_prompts``, ``corpus``), the TopK SAEs for every
layer (``sae_topk``, ``sae_training``, ``sae_quality``), and the resumable ``corrsteer prepare`` that ties them
together (``prepare``).
"""
